"""Where datasets live on disk, and verified downloads into the user cache.

Resolution order for a named dataset: an explicit path (zip file or unpacked folder)
> the folder named by ``COLLABFILTER_DATA_DIR`` > the user cache
(``COLLABFILTER_CACHE_DIR`` or the platform cache, ``~/.cache/collabfilter`` on Linux)
> download. A download streams into a temporary file beside its destination, is
checked against the published size and digests, and only then renamed into place: an
interrupted or corrupt download never leaves a file that a later run would trust.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.request
import warnings
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import IO, Literal

from platformdirs import user_cache_path

from collabfilter.errors import (
    ChecksumError,
    ChecksumMismatchWarning,
    DatasetUnavailableError,
)
from collabfilter.progress import progress_bar

DATA_DIR_ENV = "COLLABFILTER_DATA_DIR"
"""Environment variable naming a folder of already-downloaded datasets."""

CACHE_DIR_ENV = "COLLABFILTER_CACHE_DIR"
"""Environment variable overriding where downloads are cached."""

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Archive:
    """A published zip: where to get it and how to recognise a good copy.

    Attributes:
        name: the dataset name, also the zip's stem and its top folder.
        url: the official download address.
        size: size in bytes of the published zip.
        md5: MD5 hex digest as the publisher lists it, if known.
        sha256: SHA-256 hex digest, if known.
        development: a release the publisher may regenerate; a digest mismatch then
            warns instead of failing.
        marker: a file every copy contains, used to recognise unpacked folders.
    """

    name: str
    url: str
    size: int
    md5: str | None
    sha256: str | None
    development: bool
    marker: str


@dataclass(frozen=True)
class Location:
    """A dataset found on disk: a zip archive or an unpacked folder."""

    kind: Literal["zip", "folder"]
    path: Path
    archive: Archive

    def open(self, member: str) -> IO[bytes]:
        """Open ``member`` (a path inside the dataset folder) for binary reading.

        Raises:
            DatasetUnavailableError: if the member is missing.
        """
        if self.kind == "folder":
            target = self.path / member
            if not target.is_file():
                raise DatasetUnavailableError(f"{self.archive.name}: {target} is missing")
            return open(target, "rb")
        archive = zipfile.ZipFile(self.path)
        names = archive.namelist()
        wanted = f"{self.archive.name}/{member}"
        match = wanted if wanted in names else next((n for n in names if n.endswith(member)), None)
        if match is None:
            archive.close()
            raise DatasetUnavailableError(f"{self.archive.name}: {self.path} has no {member}")
        return archive.open(match)

    def __str__(self) -> str:
        return f"{self.path} ({self.kind})"


def cache_dir() -> Path:
    """The download cache: ``$COLLABFILTER_CACHE_DIR`` or the platform's user cache."""
    configured = os.environ.get(CACHE_DIR_ENV, "").strip()
    return Path(configured).expanduser() if configured else user_cache_path("collabfilter")


def data_dir() -> Path | None:
    """The folder of pre-downloaded datasets named by ``$COLLABFILTER_DATA_DIR``, if set."""
    configured = os.environ.get(DATA_DIR_ENV, "").strip()
    return Path(configured).expanduser() if configured else None


def locate(archive: Archive, path: str | Path | None = None, *, download: bool = True) -> Location:
    """Find ``archive`` on disk (see the module docstring for the order), or download it.

    Args:
        archive: what to look for.
        path: an explicit zip file or folder; when given, nothing else is searched.
        download: whether a missing dataset may be downloaded into the cache.

    Raises:
        DatasetUnavailableError: with the exact steps to get the files by hand.
        ChecksumError: if a zip found or downloaded is not the published one.
    """
    if path is not None:
        found = _look_in(archive, Path(path).expanduser(), explicit=True)
        if found is None:
            raise DatasetUnavailableError(
                f"{path} holds no {archive.name} (expected {archive.name}.zip, or a folder "
                f"containing {archive.marker})"
            )
        return _verified(found)
    for folder in (data_dir(), cache_dir()):
        if folder is not None:
            found = _look_in(archive, folder, explicit=False)
            if found is not None:
                return _verified(found)
    if not download:
        raise DatasetUnavailableError(_how_to_get(archive, "downloads are disabled"))
    destination = cache_dir() / f"{archive.name}.zip"
    download_verified(archive, destination)
    return Location("zip", destination, archive)


def _look_in(archive: Archive, place: Path, *, explicit: bool) -> Location | None:
    if place.is_file():
        return Location("zip", place, archive) if explicit else None
    candidates = [place / archive.name, place] if explicit else [place / archive.name]
    for folder in candidates:
        if (folder / archive.marker).is_file():
            return Location("folder", folder, archive)
    zipped = place / f"{archive.name}.zip"
    return Location("zip", zipped, archive) if zipped.is_file() else None


def _verified(location: Location) -> Location:
    if location.kind == "zip":
        stat = location.path.stat()
        _verify_cached(location.archive, str(location.path.resolve()), stat.st_size, stat.st_mtime)
    return location


@lru_cache(maxsize=32)
def _verify_cached(archive: Archive, path: str, size: int, mtime: float) -> None:
    """Hash each zip once per process (keyed by size and mtime: a changed file re-checks)."""
    md5, sha256 = file_digests(Path(path))
    check_digests(archive, Path(path), size, md5, sha256)


def file_digests(path: Path) -> tuple[str, str]:
    """MD5 and SHA-256 hex digests of a file, read once."""
    md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            md5.update(chunk)
            sha256.update(chunk)
    return md5.hexdigest(), sha256.hexdigest()


def check_digests(archive: Archive, what: str | Path, size: int, md5: str, sha256: str) -> None:
    """Compare a file's size and digests with the published ones.

    ``what`` names the file (or the download) in messages.

    Raises:
        ChecksumError: on any mismatch, unless the archive is a development release,
            in which case a :class:`ChecksumMismatchWarning` names both digests.
    """
    problems = []
    if archive.md5 is not None and md5 != archive.md5:
        problems.append(f"MD5 {md5} (expected {archive.md5})")
    if archive.sha256 is not None and sha256 != archive.sha256:
        problems.append(f"SHA-256 {sha256} (expected {archive.sha256})")
    if size != archive.size and not (archive.development and problems):
        problems.append(f"{size:,} bytes (expected {archive.size:,})")
    if not problems:
        return
    message = f"{what} is not the published {archive.name}.zip: " + "; ".join(problems)
    if archive.development:
        warnings.warn(
            message + f". GroupLens regenerates {archive.name} from time to time; using it anyway",
            ChecksumMismatchWarning,
            stacklevel=3,
        )
        return
    raise ChecksumError(message + ". Delete it and download again.")


def download_verified(archive: Archive, destination: Path, *, timeout: float = 60.0) -> None:
    """Download ``archive.url`` to ``destination``, verify it, then rename it into place.

    Raises:
        DatasetUnavailableError: when the network or server fails (with manual steps).
        ChecksumError: when the bytes are not the published file; nothing is kept.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(f".{destination.name}.{os.getpid()}.part")
    try:
        try:
            md5, sha256 = _stream_to(partial, archive, timeout)
        except (OSError, http.client.HTTPException) as error:  # URLError, timeouts, cut-offs
            reason = f"the download failed ({error})"
            raise DatasetUnavailableError(_how_to_get(archive, reason)) from error
        size = partial.stat().st_size
        check_digests(archive, f"the download of {archive.url}", size, md5, sha256)
        os.replace(partial, destination)
    finally:
        partial.unlink(missing_ok=True)


def _stream_to(partial: Path, archive: Archive, timeout: float) -> tuple[str, str]:
    """Copy the archive's URL into ``partial``, hashing as it goes; returns the digests."""
    md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with urllib.request.urlopen(archive.url, timeout=timeout) as response:
        total = int(response.headers.get("Content-Length") or archive.size)
        received = 0
        with (
            open(partial, "wb") as out,
            progress_bar(total, f"Downloading {archive.name}", unit="bytes") as advance,
        ):
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                md5.update(chunk)
                sha256.update(chunk)
                received += len(chunk)
                advance(len(chunk))
    announced = response.headers.get("Content-Length")
    if announced is not None and received != int(announced):
        raise ConnectionError(f"connection closed after {received:,} of {int(announced):,} bytes")
    return md5.hexdigest(), sha256.hexdigest()


def _how_to_get(archive: Archive, reason: str) -> str:
    digest = f"md5 {archive.md5}" if archive.md5 else f"sha256 {archive.sha256}"
    return (
        f"{archive.name} is not on this machine and {reason}.\n"
        f"  1. Download {archive.url} ({archive.size / 1e6:,.1f} MB, {digest}).\n"
        f"  2. Either put {archive.name}.zip (or its unpacked {archive.name}/ folder) into "
        f"{cache_dir()},\n"
        f"     or into a folder named by ${DATA_DIR_ENV},\n"
        f"     or pass its path: load_movielens({archive.name!r}, path=...) / "
        f"collabfilter ... --data PATH."
    )

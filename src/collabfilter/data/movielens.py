"""The MovieLens registry and loaders: which files, in which format, checked how.

Five GroupLens releases are known, each with its official URL, published size and
digests, and its own file formats: ml-100k (tab-separated ``u.data``, latin-1
pipe-separated ``u.item``), ml-1m (``::``-separated latin-1 ``.dat`` files) and the CSV
releases (UTF-8, quoted titles, pipe-separated genres, half-star ratings). Loading goes
through :func:`collabfilter.data.fetch.locate`, so a local path, ``COLLABFILTER_DATA_DIR``
and the cache are tried before any download.

Each release's side information comes with its ratings: the films' genres and year
(from the title) for every release, and the users' age, gender, occupation and zip
code's first character where the release has a users file (ml-100k, ml-1m).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from collabfilter.data.features import SideFeatures
from collabfilter.data.fetch import Archive, Location, locate
from collabfilter.data.io import ColumnMap, read_csv_buffer, single_byte_separator
from collabfilter.data.ratings import Ratings, RatingScale
from collabfilter.data.split import Split, make_split
from collabfilter.errors import DatasetUnavailableError, SplitError, UnknownDatasetError

BASE_URL = "https://files.grouplens.org/datasets/movielens"

DatasetName = Literal["ml-100k", "ml-1m", "ml-latest-small", "ml-25m", "ml-32m"]


@dataclass(frozen=True)
class TableFormat:
    """How one text file of a release is laid out.

    Attributes:
        member: path of the file inside the release folder.
        sep: field separator.
        encoding: text encoding.
        header: whether the first line names the columns.
        names: the column names to use (the file's own when ``header`` is True).
    """

    member: str
    sep: str
    encoding: str
    header: bool
    names: tuple[str, ...]


@dataclass(frozen=True)
class MovieLensSpec:
    """One MovieLens release: its archive, file formats and rating scale."""

    archive: Archive
    ratings: TableFormat
    movies: TableFormat
    scale: RatingScale
    genres: Literal["flags", "pipe"]
    folds: tuple[str, ...] = field(default=())
    users: TableFormat | None = None
    """The users file (id, then demographics), for the releases that have one."""

    @property
    def name(self) -> str:
        """The release name, e.g. ``"ml-100k"``."""
        return self.archive.name


_RATING_NAMES = ("user", "item", "rating", "timestamp")
_CSV_RATINGS = TableFormat("ratings.csv", ",", "utf-8", True, ("userId", "movieId", "rating"))
_CSV_MOVIES = TableFormat("movies.csv", ",", "utf-8", True, ("movieId", "title", "genres"))
_ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip


def _archive(
    name: str, size: int, md5: str | None, sha256: str | None, marker: str, dev: bool = False
) -> Archive:
    return Archive(name, f"{BASE_URL}/{name}.zip", size, md5, sha256, dev, marker)


def _csv_release(name: str, size: int, md5: str | None, sha256: str | None, dev: bool = False):  # type: ignore[no-untyped-def]
    return MovieLensSpec(
        archive=_archive(name, size, md5, sha256, "ratings.csv", dev),
        ratings=_CSV_RATINGS,
        movies=_CSV_MOVIES,
        scale=RatingScale(0.5, 5.0, 0.5),
        genres="pipe",
    )


REGISTRY: dict[str, MovieLensSpec] = {
    "ml-100k": MovieLensSpec(
        archive=_archive(
            "ml-100k",
            4_924_029,
            "0e33842e24a9c977be4e0107933c0723",
            "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
            "u.data",
        ),
        ratings=TableFormat("u.data", "\t", "latin-1", False, _RATING_NAMES),
        movies=TableFormat(
            "u.item",
            "|",
            "latin-1",
            False,
            ("item", "title", "release_date", "video_release_date", "imdb_url", *_ML100K_GENRES),
        ),
        scale=RatingScale(1.0, 5.0, 1.0),
        genres="flags",
        folds=("u1", "u2", "u3", "u4", "u5", "ua", "ub"),
        users=TableFormat(
            "u.user", "|", "latin-1", False, ("user", "age", "gender", "occupation", "zip")
        ),
    ),
    "ml-1m": MovieLensSpec(
        archive=_archive(
            "ml-1m",
            5_917_549,
            "c4d9eecfca2ab87c1945afe126590906",
            "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
            "ratings.dat",
        ),
        ratings=TableFormat("ratings.dat", "::", "latin-1", False, _RATING_NAMES),
        movies=TableFormat("movies.dat", "::", "latin-1", False, ("item", "title", "genres")),
        scale=RatingScale(1.0, 5.0, 1.0),
        genres="pipe",
        users=TableFormat(
            "users.dat", "::", "latin-1", False, ("user", "gender", "age", "occupation", "zip")
        ),
    ),
    "ml-latest-small": _csv_release(
        "ml-latest-small",
        978_202,
        None,
        "696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
        dev=True,
    ),
    "ml-25m": _csv_release(
        "ml-25m",
        261_978_986,
        "6b51fb2759a8657d3bfcbfc42b592ada",
        "8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa",
    ),
    "ml-32m": _csv_release("ml-32m", 238_950_008, "d472be332d4daa821edc399621853b57", None),
}
"""Known MovieLens releases by name."""


def get_spec(name: str) -> MovieLensSpec:
    """The registry entry for ``name``.

    Raises:
        UnknownDatasetError: listing the known names.
    """
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownDatasetError(
            f"unknown MovieLens dataset {name!r}; known: {', '.join(REGISTRY)}"
        ) from None


def load_movielens(
    name: DatasetName | str = "ml-100k",
    *,
    path: str | Path | None = None,
    download: bool = True,
    spec: MovieLensSpec | None = None,
) -> Ratings:
    """Load a MovieLens release as :class:`Ratings` with titles, verifying what it reads.

    Args:
        name: the release (see :data:`REGISTRY`).
        path: a zip file or unpacked folder to read instead of searching.
        download: whether a release found nowhere on disk may be downloaded.
        spec: a registry entry to use instead of looking ``name`` up (tests, mirrors).

    Raises:
        UnknownDatasetError: for a name not in the registry.
        DatasetUnavailableError: when the files are nowhere and cannot be downloaded.
        ChecksumError: when a zip is not the published file.
    """
    spec = spec or get_spec(name)
    location = locate(spec.archive, path, download=download)
    movies = _movies(spec, location)
    ratings = _read_ratings(spec, location, spec.ratings.member, _titles(movies))
    return _with_side_features(ratings, spec, location, movies)


def movie_titles(spec: MovieLensSpec, location: Location) -> pd.Series:
    """Raw movie id -> title, from the release's movies file."""
    return _titles(_movies(spec, location))


def _table(location: Location, fmt: TableFormat) -> pd.DataFrame:
    """A text table of a release, all columns as text, named by ``fmt`` (a row with
    fewer fields than names gets NaN in the rest)."""
    with location.open(fmt.member) as raw:
        handle, sep, encoding = single_byte_separator(raw, fmt.sep, fmt.encoding)
        return pd.read_csv(
            handle,
            sep=sep,
            encoding=encoding,
            header=0 if fmt.header else None,
            names=None if fmt.header else list(fmt.names),
            dtype=str,
            keep_default_na=False,
            # Only the CSV releases quote titles; ml-100k titles may hold a bare '"'.
            quoting=csv.QUOTE_MINIMAL if fmt.header else csv.QUOTE_NONE,
        )


def _movies(spec: MovieLensSpec, location: Location) -> pd.DataFrame:
    """The movies file, indexed by integer movie id."""
    frame = _table(location, spec.movies)
    return frame.set_index(pd.Index(frame.iloc[:, 0].astype(np.int64), name="item"))


def _titles(movies: pd.DataFrame) -> pd.Series:
    return pd.Series(movies.iloc[:, 1].to_numpy(object), index=movies.index.to_numpy(np.int64))


_YEAR = r"\((\d{4})\)\s*$"
_NO_GENRES = "(no genres listed)"


def _with_side_features(
    ratings: Ratings, spec: MovieLensSpec, location: Location, movies: pd.DataFrame
) -> Ratings:
    """``ratings`` with the release's movie features (genres, year in the title) and
    user features (where the release has a users file)."""
    if spec.genres == "flags":
        names = [g for g in _ML100K_GENRES if g != "unknown"]
        flags = (movies[names] == "1").to_numpy(dtype=object)  # "name|" times 0 or 1, summed
        joined = (flags * np.array([f"{g}|" for g in names], dtype=object)).sum(axis=1)
        genres = pd.Series(joined, index=movies.index, dtype=object).str.rstrip("|")
    else:
        genres = movies.iloc[:, 2].fillna("")
    genres = genres.where((genres != "") & (genres != _NO_GENRES))
    year = pd.to_numeric(movies.iloc[:, 1].str.extract(_YEAR)[0], errors="coerce")
    items = SideFeatures(
        pd.DataFrame({"genres": genres, "year": year}, index=movies.index),
        kinds={"genres": "multi", "year": "number"}, kind="item",
    )  # fmt: skip
    users = None
    try:  # a folder may hold the ratings and movies alone
        table = _table(location, spec.users) if spec.users is not None else None
    except DatasetUnavailableError:
        table = None
    if table is not None:
        frame = pd.DataFrame(
            {  # arrays, not Series: a Series would be realigned to the new index
                "age": pd.to_numeric(table["age"], errors="coerce").to_numpy(),
                "gender": table["gender"].to_numpy(),
                "occupation": table["occupation"].to_numpy(),
                "zip": table["zip"].str.strip().str[:1].to_numpy(),
            },
            index=pd.Index(table["user"].astype(np.int64), name="user"),
        )
        users = SideFeatures(
            frame,
            kinds={"age": "number", "gender": "category", "occupation": "category",
                   "zip": "category"},
            kind="user",
        )  # fmt: skip
    return ratings.with_features(users, items)


def _read_ratings(
    spec: MovieLensSpec, location: Location, member: str, titles: pd.Series
) -> Ratings:
    fmt = spec.ratings
    names = fmt.names if fmt.header else _RATING_NAMES
    columns = ColumnMap(
        user=names[0], item=names[1], rating=names[2], timestamp="timestamp", ids="int"
    )
    with location.open(member) as handle:
        canonical, report = read_csv_buffer(
            handle,
            source=f"{location.path}/{member}"
            if location.kind == "folder"
            else f"{location}:{member}",
            columns=columns,
            sep=fmt.sep,
            header=fmt.header,
            names=None if fmt.header else list(_RATING_NAMES),
            encoding=fmt.encoding,
            scale=(spec.scale.low, spec.scale.high),
        )
    return Ratings.from_canonical(
        canonical, report, scale=spec.scale, duplicates="error", titles=titles
    )


def load_movielens_fold(
    fold: str, *, path: str | Path | None = None, download: bool = True
) -> Split:
    """One of ml-100k's canonical splits (``u1``..``u5``, ``ua``, ``ub``), from its files.

    Both parts are encoded with the vocabulary of the whole data set (``u.data``), so
    indices agree with :func:`load_movielens` and across folds.

    Raises:
        SplitError: for a fold name ml-100k does not have, or files that do not
            partition ``u.data``.
    """
    spec = get_spec("ml-100k")
    if fold not in spec.folds:
        raise SplitError(f"ml-100k has no fold {fold!r}; known folds: {', '.join(spec.folds)}")
    location = locate(spec.archive, path, download=download)
    movies = _movies(spec, location)
    titles = _titles(movies)
    full = _with_side_features(
        _read_ratings(spec, location, spec.ratings.member, titles), spec, location, movies
    )
    key = pd.MultiIndex.from_arrays([full.users.ids[full.user_idx], full.items.ids[full.item_idx]])
    test = _read_ratings(spec, location, f"{fold}.test", titles)
    test_key = pd.MultiIndex.from_arrays(
        [test.users.ids[test.user_idx], test.items.ids[test.item_idx]]
    )
    positions = key.get_indexer(test_key)
    if (positions < 0).any():
        raise SplitError(f"{fold}.test holds ratings that are not in u.data")
    valid_mask = np.zeros(len(full), dtype=bool)
    valid_mask[positions] = True
    split = make_split(full, valid_mask, f"ml-100k canonical fold {fold}")
    base = _read_ratings(spec, location, f"{fold}.base", titles)
    if len(base) != split.report.n_train:
        raise SplitError(
            f"{fold}.base has {len(base):,} ratings but u.data minus {fold}.test has "
            f"{split.report.n_train:,}"
        )
    return split

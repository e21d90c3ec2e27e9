"""The downloader against a local HTTP server: verified, atomic, and helpful offline."""

import dataclasses
import hashlib
import http.server
import io
import threading
import zipfile

import pytest

from collabfilter import load_movielens
from collabfilter.data.fetch import Archive, locate
from collabfilter.data.movielens import REGISTRY, get_spec
from collabfilter.errors import (
    ChecksumError,
    ChecksumMismatchWarning,
    DatasetUnavailableError,
    UnknownDatasetError,
)

U_DATA = "1\t10\t4\t881250949\n2\t10\t3\t881250950\n2\t11\t5\t881250951\n"
U_ITEM = "10|Heat (1995)|01-Jan-1995||http://x\n11|Up (2009)|01-Jan-2009||http://y\n"


def release_zip(u_data=U_DATA):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("ml-100k/u.data", u_data)
        archive.writestr("ml-100k/u.item", U_ITEM.encode("latin-1"))
    return buffer.getvalue()


GOOD = release_zip()


class Server(http.server.ThreadingHTTPServer):
    files: dict[str, bytes] = {}
    cut_short: set[str] = set()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = self.server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if self.path in self.server.cut_short else body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = Server(("127.0.0.1", 0), Handler)
    httpd.files, httpd.cut_short = {}, set()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def no_data_dir(monkeypatch):
    monkeypatch.delenv("COLLABFILTER_DATA_DIR", raising=False)


def spec_for(server, body=GOOD, *, path="/ml-100k.zip", development=False, digest_of=GOOD):
    server.files[path] = body
    host, port = server.server_address[:2]
    archive = Archive(
        name="ml-100k",
        url=f"http://{host}:{port}{path}",
        size=len(digest_of),
        md5=hashlib.md5(digest_of).hexdigest(),
        sha256=hashlib.sha256(digest_of).hexdigest(),
        development=development,
        marker="u.data",
    )
    return dataclasses.replace(REGISTRY["ml-100k"], archive=archive)


def cache_files(cache):
    return sorted(p.name for p in cache.rglob("*"))


def test_download_verifies_then_caches(server, isolated_cache):
    spec = spec_for(server)
    ratings = load_movielens(spec=spec)
    assert len(ratings) == 3 and ratings.items.titles.tolist() == ["Heat (1995)", "Up (2009)"]
    assert cache_files(isolated_cache) == ["ml-100k.zip"]
    del server.files["/ml-100k.zip"]  # the second load must not touch the network
    assert len(load_movielens(spec=spec)) == 3


def test_corrupt_download_leaves_nothing(server, isolated_cache):
    spec = spec_for(server, body=release_zip(U_DATA + "3\t10\t1\t0\n"))
    with pytest.raises(
        ChecksumError, match="download of http.* not the published ml-100k.zip: MD5"
    ):
        load_movielens(spec=spec)
    assert cache_files(isolated_cache) == []


def test_interrupted_download_leaves_nothing(server, isolated_cache):
    spec = spec_for(server)
    server.cut_short.add("/ml-100k.zip")
    with pytest.raises(DatasetUnavailableError, match="closed after 176 of 353 bytes"):
        load_movielens(spec=spec)
    assert cache_files(isolated_cache) == []


def test_development_release_mismatch_warns_with_both_digests(server, isolated_cache):
    changed = release_zip(U_DATA + "3\t11\t2\t0\n")
    spec = spec_for(server, body=changed, development=True)
    expected = spec.archive.sha256
    with pytest.warns(ChecksumMismatchWarning, match=expected):
        ratings = load_movielens(spec=spec)
    assert len(ratings) == 4
    assert cache_files(isolated_cache) == ["ml-100k.zip"]


def test_offline_error_says_what_to_download_and_where_to_put_it(server, isolated_cache):
    spec = spec_for(server)
    server.files.clear()  # the spec's URL now answers 404
    with pytest.raises(DatasetUnavailableError) as caught:
        load_movielens(spec=spec)
    message = str(caught.value)
    assert spec.archive.url in message and "COLLABFILTER_DATA_DIR" in message
    assert str(isolated_cache) in message and "path=" in message
    with pytest.raises(DatasetUnavailableError, match="downloads are disabled"):
        load_movielens(spec=spec, download=False)


def test_resolution_order(server, isolated_cache, tmp_path, monkeypatch):
    spec = spec_for(server)
    explicit = tmp_path / "explicit" / "ml-100k"
    explicit.mkdir(parents=True)
    (explicit / "u.data").write_text("7\t10\t1\t0\n")
    (explicit / "u.item").write_text(U_ITEM)
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    (env_dir / "ml-100k.zip").write_bytes(GOOD)
    monkeypatch.setenv("COLLABFILTER_DATA_DIR", str(env_dir))
    assert load_movielens(spec=spec, path=explicit).users.ids.tolist() == [7]
    assert locate(spec.archive, explicit.parent).path == explicit
    assert locate(spec.archive).path == env_dir / "ml-100k.zip"
    monkeypatch.delenv("COLLABFILTER_DATA_DIR")
    assert locate(spec.archive).path == isolated_cache / "ml-100k.zip"  # downloaded
    assert locate(spec.archive, download=False).kind == "zip"  # now found in the cache


def test_corrupt_zip_in_cache_is_refused(server, isolated_cache):
    spec = spec_for(server)
    (isolated_cache / "ml-100k.zip").write_bytes(b"not a zip")
    with pytest.raises(ChecksumError, match="9 bytes"):
        load_movielens(spec=spec)


def test_explicit_path_without_the_dataset(tmp_path):
    with pytest.raises(DatasetUnavailableError, match="holds no ml-100k"):
        load_movielens("ml-100k", path=tmp_path)


def test_registry_knows_the_official_releases():
    assert set(REGISTRY) == {"ml-100k", "ml-1m", "ml-latest-small", "ml-25m", "ml-32m"}
    for name, spec in REGISTRY.items():
        assert spec.archive.url == f"https://files.grouplens.org/datasets/movielens/{name}.zip"
        assert spec.archive.md5 or spec.archive.sha256
    assert REGISTRY["ml-latest-small"].archive.development
    assert REGISTRY["ml-1m"].ratings.sep == "::" and REGISTRY["ml-1m"].ratings.encoding == "latin-1"
    assert REGISTRY["ml-25m"].scale.step == 0.5
    with pytest.raises(UnknownDatasetError, match="known: ml-100k"):
        get_spec("ml-10m")


def zipped(files):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def spec_of(name, body, server):
    server.files[f"/{name}.zip"] = body
    host, port = server.server_address[:2]
    base = REGISTRY[name]
    archive = dataclasses.replace(
        base.archive,
        url=f"http://{host}:{port}/{name}.zip",
        size=len(body),
        md5=hashlib.md5(body).hexdigest(),
        sha256=hashlib.sha256(body).hexdigest(),
    )
    return dataclasses.replace(base, archive=archive)


def test_ml1m_format_double_colon_latin1(server):
    body = zipped({
        "ml-1m/ratings.dat": "1::10::5::978300760\n2::10::3::978300761\n",
        "ml-1m/movies.dat": "10::Misérables, Les (1995)::Drama\n".encode("latin-1"),
    })  # fmt: skip
    ratings = load_movielens(spec=spec_of("ml-1m", body, server))
    assert ratings.items.titles.tolist() == ["Misérables, Les (1995)"]
    assert ratings.rating.tolist() == [5.0, 3.0]


def test_csv_release_format_quoted_titles_half_stars(server):
    body = zipped({
        "ml-latest-small/ratings.csv": "userId,movieId,rating,timestamp\n1,1,4.5,9\n2,2,0.5,8\n",
        "ml-latest-small/movies.csv": (
            'movieId,title,genres\n1,"American President, The (1995)",Comedy|Drama\n'
            "2,Heat (1995),Action|Crime\n"
        ),
    })  # fmt: skip
    ratings = load_movielens(spec=spec_of("ml-latest-small", body, server))
    assert ratings.items.titles.tolist() == ["American President, The (1995)", "Heat (1995)"]
    assert ratings.scale.step == 0.5 and ratings.rating.tolist() == [4.5, 0.5]


def test_ml1m_and_csv_releases_attach_their_side_features(server):
    body = zipped({
        "ml-1m/ratings.dat": "1::10::5::978300760\n2::11::3::978300761\n",
        "ml-1m/movies.dat": (
            "10::Misérables, Les (1995)::Drama\n11::Heat (1995)::Action|Crime|Thriller\n"
        ).encode("latin-1"),
        "ml-1m/users.dat": "1::F::1::10::48067\n2::M::56::16::70072\n",
    })  # fmt: skip
    ratings = load_movielens(spec=spec_of("ml-1m", body, server))
    users = ratings.user_features.frame
    assert users.loc[1].tolist() == [1, "F", "10", "4"]  # age code, gender, occupation, zip
    assert users.loc[2].tolist() == [56, "M", "16", "7"]
    assert ratings.user_features.kinds["occupation"] == "category"  # a code, not a number
    items = ratings.item_features.frame
    assert items.loc[11, "genres"] == "Action|Crime|Thriller" and items.loc[10, "year"] == 1995
    body = zipped({
        "ml-latest-small/ratings.csv": "userId,movieId,rating,timestamp\n1,1,4.5,9\n2,2,0.5,8\n",
        "ml-latest-small/movies.csv": (
            'movieId,title,genres\n1,"American President, The (1995)",Comedy|Drama\n'
            "2,Untitled,(no genres listed)\n"
        ),
    })  # fmt: skip
    ratings = load_movielens(spec=spec_of("ml-latest-small", body, server))
    assert ratings.user_features is None  # the CSV releases have no users file
    items = ratings.item_features.frame
    assert items.loc[1, "genres"] == "Comedy|Drama" and items.loc[1, "year"] == 1995
    assert items.loc[[2]].isna().all(axis=None)  # no genres listed, no year in the title

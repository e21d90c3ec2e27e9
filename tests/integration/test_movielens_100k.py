"""The real ml-100k files under COLLABFILTER_DATA_DIR (../shared/datasets in CI)."""

import dataclasses
import shutil

import numpy as np
import pandas as pd
import pytest

from collabfilter import load_movielens, load_movielens_fold, split_random
from collabfilter.data.fetch import Archive, file_digests
from collabfilter.data.movielens import REGISTRY
from conftest import require_file

pytestmark = pytest.mark.realdata


def test_counts_titles_and_scale(ml100k):
    assert (len(ml100k), ml100k.n_users, ml100k.n_items) == (100_000, 943, 1682)
    assert ml100k.items.labels(ml100k.items.index([1]))[0] == "Toy Story (1995)"
    assert ml100k.items.titles is not None and ml100k.report.items_without_title == 0
    assert (ml100k.scale.low, ml100k.scale.high, ml100k.scale.step) == (1.0, 5.0, 1.0)
    assert (ml100k.user_counts() >= 20).all()
    assert ml100k.histogram().to_dict() == {
        1.0: 6110,
        2.0: 11370,
        3.0: 27145,
        4.0: 34174,
        5.0: 21201,
    }


def test_latin1_titles_survive(ml100k):
    titles = set(ml100k.items.titles.tolist())
    assert "Misérables, Les (1995)" in titles  # a latin-1 é in u.item


def test_crosstab_matches_the_lesson(ml100k):
    table = ml100k.crosstab(15, 15)
    assert table.shape == (15, 15)
    assert table.columns[0] == 50  # Star Wars, the most rated film
    assert table.index[0] == 405  # the most active user (737 ratings)


def test_loading_through_the_data_dir_setting(ml100k_dir, monkeypatch):
    monkeypatch.setenv("COLLABFILTER_DATA_DIR", str(ml100k_dir.parent))
    assert len(load_movielens("ml-100k", download=False)) == 100_000


@pytest.mark.parametrize(
    ("fold", "n_train", "n_valid"),
    [("u1", 80_000, 20_000), ("u3", 80_000, 20_000), ("ua", 90_570, 9_430)],
)
def test_canonical_folds(ml100k_dir, fold, n_train, n_valid):
    split = load_movielens_fold(fold, path=ml100k_dir)
    assert (split.report.n_train, split.report.n_valid) == (n_train, n_valid)
    assert split.train.n_items == 1682  # the vocabulary of the whole data set
    test = pd.read_csv(ml100k_dir / f"{fold}.test", sep="\t", header=None)
    valid = split.valid.to_frame()
    assert sorted(zip(valid.user, valid.item, strict=True)) == sorted(
        zip(test[0], test[1], strict=True)
    )


def test_u_folds_are_disjoint_and_cover(ml100k_dir):
    keys = []
    for fold in ("u1", "u2", "u3", "u4", "u5"):
        valid = load_movielens_fold(fold, path=ml100k_dir).valid
        keys.extend((valid.user_idx.astype(np.int64) * 2000 + valid.item_idx).tolist())
    assert len(keys) == len(set(keys)) == 100_000


def test_random_split_reproduces_the_shared_benchmark_split(ml100k):
    train_csv = require_file("splits/ml-100k-r90/train.csv")
    expected = pd.read_csv(train_csv)
    train = split_random(ml100k, 0.1, seed=42, keep_known=False).train.to_frame()
    assert sorted(zip(train.user, train.item, strict=True)) == sorted(
        zip(expected.user, expected.item, strict=True)
    )
    kept = split_random(ml100k, 0.1, seed=42)
    assert kept.report.unseen_items == 0 and kept.report.moved_to_train > 0


def test_reading_a_zip_of_the_release(ml100k_dir, tmp_path):
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    for name in ("u.data", "u.item"):
        shutil.copy(ml100k_dir / name, folder / name)
    zipped = shutil.make_archive(str(tmp_path / "ml-100k"), "zip", tmp_path, "ml-100k")
    md5, sha256 = file_digests(tmp_path / "ml-100k.zip")
    size = (tmp_path / "ml-100k.zip").stat().st_size
    archive = Archive("ml-100k", "http://unused", size, md5, sha256, False, "u.data")
    spec = dataclasses.replace(REGISTRY["ml-100k"], archive=archive)
    ratings = load_movielens(spec=spec, path=zipped)
    assert len(ratings) == 100_000 and ratings.n_items == 1682

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collabfilter import (
    Ratings,
    generate_ratings,
    split_by_user,
    split_cold_items,
    split_cold_users,
    split_kfold,
    split_random,
    split_temporal,
    split_temporal_by_user,
    train_test_split,
)
from collabfilter.errors import SplitError


def random_ratings(n_users, n_items, n, seed):
    rng = np.random.default_rng(seed)
    keys = rng.choice(n_users * n_items, size=min(n, n_users * n_items), replace=False)
    return Ratings.from_df(
        pd.DataFrame(
            {
                "user": keys // n_items,
                "item": keys % n_items,
                "rating": rng.integers(1, 6, len(keys)).astype(float),
                "timestamp": rng.integers(0, 50, len(keys)),  # many ties on purpose
            }
        ),
        timestamp="timestamp",
    )


shapes = st.tuples(
    st.integers(1, 30), st.integers(1, 30), st.integers(2, 400), st.integers(0, 2**16)
).map(lambda t: random_ratings(*t))


def row_keys(ratings):
    return sorted(zip(ratings.user_idx.tolist(), ratings.item_idx.tolist(), strict=True))


def assert_partition(ratings, split):
    train, valid = split
    assert train.users is ratings.users and valid.items is ratings.items
    assert len(train) + len(valid) == len(ratings)
    assert not set(row_keys(train)) & set(row_keys(valid))
    assert sorted(row_keys(train) + row_keys(valid)) == row_keys(ratings)
    assert split.report.n_train == len(train) and split.report.n_valid == len(valid)


def assert_unseen_counts(split):
    train, valid = split
    unseen_users = set(valid.user_idx.tolist()) - set(train.user_idx.tolist())
    unseen_items = set(valid.item_idx.tolist()) - set(train.item_idx.tolist())
    assert split.report.unseen_users == len(unseen_users)
    assert split.report.unseen_items == len(unseen_items)


@settings(max_examples=60, deadline=None)
@given(shapes, st.floats(0.05, 0.95), st.integers(0, 1000), st.booleans())
def test_random_split_partitions_deterministically(ratings, pct, seed, keep_known):
    split = split_random(ratings, pct, seed=seed, keep_known=keep_known)
    assert_partition(ratings, split)
    assert_unseen_counts(split)
    again = split_random(ratings, pct, seed=seed, keep_known=keep_known)
    assert row_keys(again.valid) == row_keys(split.valid)
    if keep_known:
        assert split.report.unseen_users == 0 and split.report.unseen_items == 0
        assert split.report.n_valid == int(pct * len(ratings)) - split.report.moved_to_train


@settings(max_examples=40, deadline=None)
@given(shapes, st.integers(2, 6))
def test_kfold_validation_parts_are_disjoint_and_cover(ratings, n_folds):
    if n_folds > len(ratings):
        with pytest.raises(SplitError):
            split_kfold(ratings, n_folds)
        return
    folds = split_kfold(ratings, n_folds, seed=3)
    for split in folds:
        assert_partition(ratings, split)
        assert_unseen_counts(split)
    covered = [key for split in folds for key in row_keys(split.valid)]
    assert sorted(covered) == row_keys(ratings)


@settings(max_examples=40, deadline=None)
@given(shapes, st.integers(1, 4), st.integers(0, 3))
def test_per_user_holdout_takes_n_and_keeps_min_train(ratings, n, min_train):
    split = split_by_user(ratings, n=n, min_train=min_train, seed=1)
    assert_partition(ratings, split)
    total = ratings.user_counts()
    held = split.valid.user_counts()
    assert np.array_equal(held, np.clip(np.minimum(n, total - min_train), 0, None))


@settings(max_examples=40, deadline=None)
@given(shapes, st.floats(0.1, 0.9))
def test_temporal_splits_hold_out_the_latest(ratings, frac):
    split = split_temporal(ratings, frac)
    assert_partition(ratings, split)
    if len(split.valid) and len(split.train):
        assert split.valid.timestamp.min() >= split.train.timestamp.max()
    per_user = split_temporal_by_user(ratings, frac=frac, min_train=1)
    assert_partition(ratings, per_user)
    train, valid = per_user
    for user in np.unique(valid.user_idx):
        assert valid.timestamp[valid.user_idx == user].min() >= (
            train.timestamp[train.user_idx == user].max()
        )


def test_default_split_moves_unseen_users_and_items_to_train():
    # user 9 and item 99 have a single rating each: a validation draw of it is moved back
    ratings = Ratings.from_df(
        pd.DataFrame({"user": [1, 1, 2, 2, 9], "item": [1, 2, 1, 2, 99], "rating": [1.0] * 5})
    )
    moved = [s for s in range(30) if split_random(ratings, 0.4, seed=s).report.moved_to_train]
    assert moved, "some seed draws the lone rating into validation"
    raw = split_random(ratings, 0.4, seed=moved[0], keep_known=False)
    assert raw.report.unseen_users + raw.report.unseen_items >= 1


def test_train_test_split_accepts_fraction_or_count():
    ratings = random_ratings(20, 20, 200, 0)
    assert train_test_split(ratings, 0.2, keep_known=False).report.n_valid == 40
    assert train_test_split(ratings, 30, keep_known=False).report.n_valid == 30
    with pytest.raises(SplitError):
        train_test_split(ratings, 0)


def test_argument_errors():
    ratings = random_ratings(5, 5, 20, 0)
    with pytest.raises(SplitError, match="valid_pct"):
        split_random(ratings, 1.0)
    with pytest.raises(SplitError, match="exactly one"):
        split_by_user(ratings)
    no_time = Ratings.from_df(pd.DataFrame({"user": [1], "item": [1], "rating": [1.0]}))
    with pytest.raises(SplitError, match="timestamps"):
        split_temporal(no_time)


@pytest.mark.parametrize("side", ["item", "user"])
def test_cold_splits_hold_out_every_rating_of_some_ids(side):
    ratings = generate_ratings(300, 200, 6000, seed=3).ratings
    split = (split_cold_items if side == "item" else split_cold_users)(ratings, 0.2, seed=1)
    index = f"{side}_idx"
    held, kept = set(getattr(split.valid, index)), set(getattr(split.train, index))
    assert held and not held & kept  # no held-out id keeps a training rating
    n = ratings.n_items if side == "item" else ratings.n_users
    assert len(held) == round(0.2 * n) and len(split.train) + len(split.valid) == len(ratings)
    assert split.train.items is ratings.items  # the vocabularies still know them
    unseen = split.report.unseen_items if side == "item" else split.report.unseen_users
    assert unseen == len(held) and f"cold {side}s" in split.report.method
    again = (split_cold_items if side == "item" else split_cold_users)(ratings, 0.2, seed=1)
    np.testing.assert_array_equal(again.valid.rating, split.valid.rating)
    for bad in (0.0, 1.0, -0.1, 0.0001):
        with pytest.raises(SplitError):
            (split_cold_items if side == "item" else split_cold_users)(ratings, bad)

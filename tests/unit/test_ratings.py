import warnings

import numpy as np
import pandas as pd
import pytest

from collabfilter import Ratings, RatingScale, generate_ratings
from collabfilter.data.tensors import RatingTensors
from collabfilter.errors import DataError, DataWarning, DuplicateRatingsError


def frame(**columns):
    return pd.DataFrame(columns)


DUPLICATED = frame(
    user=[1, 1, 2, 1, 1],
    item=[5, 5, 5, 6, 5],
    rating=[1.0, 2.0, 3.0, 4.0, 5.0],
    timestamp=[30, 10, 5, 7, 20],
)


@pytest.mark.parametrize(
    ("policy", "kept_rating", "kept_time"),
    [("last", 1.0, 30), ("first", 2.0, 10), ("mean", (1 + 2 + 5) / 3, 30)],
)
def test_duplicate_policies_are_counted_and_announced(policy, kept_rating, kept_time):
    with pytest.warns(DataWarning, match=f"2 repeated rating.*duplicates='{policy}'"):
        ratings = Ratings.from_df(DUPLICATED, timestamp="timestamp", duplicates=policy)
    assert len(ratings) == 3
    assert ratings.report.duplicates == 2 and ratings.report.duplicate_policy == policy
    table = ratings.to_frame().set_index(["user", "item"])
    assert table.loc[(1, 5), "rating"] == pytest.approx(kept_rating)
    assert table.loc[(1, 5), "timestamp"] == kept_time
    assert table.loc[(1, 6), "rating"] == 4.0


def test_last_without_timestamps_means_last_in_the_file():
    with pytest.warns(DataWarning):
        ratings = Ratings.from_df(DUPLICATED[["user", "item", "rating"]])
    assert ratings.to_frame().set_index(["user", "item"]).loc[(1, 5), "rating"] == 5.0


def test_duplicates_error_policy_and_unknown_policy():
    with pytest.raises(DuplicateRatingsError, match="2 repeated"):
        Ratings.from_df(DUPLICATED, duplicates="error")
    with pytest.raises(DataError, match="duplicates must be one of"):
        Ratings.from_df(DUPLICATED, duplicates="sum")


def test_no_duplicates_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ratings = Ratings.from_df(frame(user=[1, 2], item=[1, 1], rating=[3.0, 4.0]))
    assert ratings.report.duplicates == 0


def test_scale_inferred_or_declared():
    ratings = Ratings.from_df(frame(user=[1, 2], item=[1, 1], rating=[0.5, 4.5]))
    assert ratings.scale == RatingScale(0.5, 4.5, 0.5)
    declared = Ratings.from_df(frame(user=[1], item=[1], rating=[3.0]), scale=(1, 5))
    assert (declared.scale.low, declared.scale.high) == (1.0, 5.0)
    with pytest.raises(DataError):
        RatingScale(5, 1)


def small_ratings():
    # users 1..4 with 4, 3, 2, 1 ratings; items 10..13 rated 4, 3, 2, 1 times
    pairs = [(u, i) for u in range(1, 5) for i in range(10, 15 - u)]
    users, items = zip(*pairs, strict=True)
    rating = np.arange(len(pairs), dtype=float) % 5 + 1
    return Ratings.from_df(frame(user=users, item=items, rating=rating))


def test_crosstab_puts_most_active_first_and_marks_missing():
    ratings = small_ratings()
    table = ratings.crosstab(top_users=2, top_items=3)
    assert table.index.tolist() == [1, 2] and table.columns.tolist() == [10, 11, 12]
    assert table.loc[1, 12] == ratings.to_frame().set_index(["user", "item"]).loc[(1, 12), "rating"]
    assert np.isnan(ratings.crosstab().loc[4, 13])


def test_summary_counts_and_histogram():
    ratings = small_ratings()
    summary = ratings.summary()
    assert (summary.n_ratings, summary.n_users, summary.n_items) == (10, 4, 4)
    assert summary.ratings_per_user == (1, 2.5, 4)
    assert summary.histogram.sum() == 10
    assert summary.density == pytest.approx(10 / 16)


def test_sample_is_seeded_and_carries_titles():
    ratings = small_ratings().with_titles({10: "Ten", 11: "Eleven"})
    first, again = ratings.sample(4, seed=3), ratings.sample(4, seed=3)
    assert first.equals(again) and len(first) == 4
    assert set(first.columns) == {"user", "item", "title", "rating"}
    assert len(ratings.sample(100)) == len(ratings)


def test_subset_shares_vocabularies_and_checks_alignment():
    ratings = small_ratings()
    part = ratings.subset(np.array([0, 1]))
    assert part.users is ratings.users and len(part) == 2
    with pytest.raises(DataError, match="one length"):
        Ratings(np.array([0]), np.array([0, 0]), np.array([1.0]), users=ratings.users,
                items=ratings.items)  # fmt: skip
    with pytest.raises(DataError, match="item_idx must lie"):
        Ratings(np.array([0]), np.array([9]), np.array([1.0]), users=ratings.users,
                items=ratings.items)  # fmt: skip


def test_rating_tensors_copy_read_only_columns_and_share_writable_ones():
    """torch has no read-only tensors: a read-only column (memory-mapped, Arrow) is
    copied, silently and without torch's warning; a writable one is shared."""
    ratings = generate_ratings(50, 40, 500, seed=1).ratings
    shared = RatingTensors(ratings)
    assert np.shares_memory(shared.rating.numpy(), ratings.rating)
    for column in (ratings.user_idx, ratings.item_idx, ratings.rating):
        column.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        copied = RatingTensors(ratings)
    assert not np.shares_memory(copied.rating.numpy(), ratings.rating)
    assert np.array_equal(copied.rating.numpy(), ratings.rating)
    assert np.array_equal(copied.user_idx.numpy(), ratings.user_idx)

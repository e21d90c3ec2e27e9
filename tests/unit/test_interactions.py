"""The training ratings by user (CSR): a counting sort, checked against a plain sort."""

import warnings

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from collabfilter.data import Ratings
from collabfilter.data.interactions import Interactions
from collabfilter.errors import DataWarning


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 30), st.integers(0, 40), st.integers(1, 5)),
        min_size=1,
        max_size=300,
    ),  # fmt: skip
    st.sampled_from(["first", "last", "mean"]),
)
def test_csr_is_the_ratings_sorted_by_user_then_item(triples, duplicates):
    """Any ratings, repeated pairs resolved by each policy, in any order: rows in user
    order and items ascending within a user, as a sort of the combined key gives."""
    frame = pd.DataFrame(triples, columns=["user", "item", "rating"])
    with warnings.catch_warnings():  # repeats are reported as a DataWarning
        warnings.simplefilter("ignore", DataWarning)
        ratings = Ratings.from_df(frame, scale=(1, 5), duplicates=duplicates)
    data = Interactions.from_ratings(ratings)
    key = ratings.user_idx.astype(np.int64) * ratings.n_items + ratings.item_idx
    order = np.argsort(key, kind="stable")
    assert np.array_equal(data.item_idx, ratings.item_idx[order])
    assert np.array_equal(data.rating, ratings.rating[order])
    assert np.array_equal(data.user_idx(), ratings.user_idx[order])
    assert data.indptr[-1] == len(ratings) and len(data.indptr) == ratings.n_users + 1

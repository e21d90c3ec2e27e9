import numpy as np
import pytest

from collabfilter import Ratings, generate_ratings, split_random
from collabfilter.errors import DataError


@pytest.fixture(scope="module")
def synthetic():
    return generate_ratings(300, 500, 20_000, n_factors=4, seed=7)


def test_shape_coverage_and_distinct_pairs(synthetic):
    ratings = synthetic.ratings
    assert (len(ratings), ratings.n_users, ratings.n_items) == (20_000, 300, 500)
    assert (ratings.user_counts() >= 20).all() and (ratings.item_counts() >= 1).all()
    keys = ratings.user_idx.astype(np.int64) * ratings.n_items + ratings.item_idx
    assert len(np.unique(keys)) == len(keys)
    assert set(np.unique(ratings.rating).tolist()) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert ratings.report.source.startswith("synthetic(")


def test_popularity_is_long_tailed(synthetic):
    counts = np.sort(synthetic.ratings.item_counts())[::-1]
    top_decile_share = counts[: len(counts) // 10].sum() / counts.sum()
    assert top_decile_share > 0.3  # MovieLens: the top 10% of items hold most ratings
    assert np.median(counts) < counts.mean()


def test_deterministic_for_a_seed():
    first = generate_ratings(50, 200, 2_000, seed=3).ratings
    again = generate_ratings(50, 200, 2_000, seed=3).ratings
    other = generate_ratings(50, 200, 2_000, seed=4).ratings
    assert first.to_frame().equals(again.to_frame())
    assert not first.to_frame().equals(other.to_frame())


def test_noise_floor_is_what_the_truth_achieves(synthetic):
    ratings, truth = synthetic.ratings, synthetic.truth
    expected = truth.expected(ratings.user_idx, ratings.item_idx)
    achieved = np.sqrt(np.mean((expected - ratings.rating) ** 2))
    floor = truth.noise_floor(ratings.user_idx, ratings.item_idx)
    assert achieved == pytest.approx(floor, rel=0.03)
    global_mean = np.sqrt(np.mean((ratings.rating.mean() - ratings.rating) ** 2))
    assert floor < 0.85 * global_mean  # the planted structure is learnable


def test_half_stars_and_parquet_round_trip(tmp_path):
    ratings = generate_ratings(40, 120, 1_000, half_stars=True, seed=1).ratings
    assert ratings.scale.step == 0.5 and (np.mod(ratings.rating, 0.5) == 0).all()
    path = ratings.to_parquet(tmp_path / "synth.parquet")
    loaded = Ratings.from_parquet(path, timestamp="timestamp")
    assert np.array_equal(loaded.rating, ratings.rating)


def test_impossible_shapes_are_refused():
    with pytest.raises(DataError):
        generate_ratings(10, 10, 90)
    with pytest.raises(DataError):
        generate_ratings(10, 10, 5)


def test_reference_estimate_sits_between_the_floor_and_the_mean():
    gaps = []
    for n_ratings in (15_000, 70_000):  # ~4.7 times the ratings per user and per item
        synthetic = generate_ratings(300, 1000, n_ratings, n_factors=4, seed=7)
        train, valid = split_random(synthetic.ratings, 0.1, seed=1)
        floor = synthetic.truth.noise_floor(valid.user_idx, valid.item_idx)
        reference = synthetic.truth.reference_rmse(train, valid)
        mean = float(np.sqrt(np.mean((train.rating.mean() - valid.rating) ** 2)))
        assert floor < reference < floor + 0.5 * (mean - floor)
        gaps.append(reference - floor)
    assert gaps[1] < 0.5 * gaps[0]  # estimation costs less with more data per row

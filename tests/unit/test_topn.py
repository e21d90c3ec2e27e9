"""Top-N models (EASE, iALS, item-kNN) and their automatic choice, on planted data."""

import time

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file

from collabfilter import Ratings, generate_ratings, split_by_user
from collabfilter.config import config_from_dict, config_to_dict
from collabfilter.errors import ConfigError, DataError
from collabfilter.evaluation.topn import evaluate_scores
from collabfilter.models import TOPN_MODELS, TopNConfig
from collabfilter.models.ranking.base import InteractionWeights, TopNModel
from collabfilter.models.ranking.choose import fit_topn
from collabfilter.models.ranking.ease import EASE, fit_ease
from collabfilter.models.ranking.ials import ImplicitALS, fit_ials
from collabfilter.models.ranking.knn import ItemKNN, fit_item_knn

N_CLUSTERS, CLUSTER_SIZE = 8, 25


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One thread: these fits are many small operations, and on a shared 2-core machine a
    second thread waiting for a busy core makes each 5-10x slower (and timing tests
    flaky); on an idle machine one thread costs little at these sizes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def clusters() -> Ratings:
    """Users each like one cluster of items: 80% of their ratings fall in it (4-5 stars),
    the rest on popular items anywhere (1-3 stars). Most-popular ignores the clusters."""
    rng = np.random.default_rng(7)
    n_users, n_items = 400, N_CLUSTERS * CLUSTER_SIZE
    popularity = rng.permutation(np.arange(1, n_items + 1) ** -0.8)
    popularity /= popularity.sum()
    rows = []
    for user in range(n_users):  # building the fixture, not the code under test
        home = user % N_CLUSTERS
        inside = rng.choice(CLUSTER_SIZE, 12, replace=False) + home * CLUSTER_SIZE
        outside = rng.choice(n_items, 3, replace=False, p=popularity)
        items = np.unique(np.concatenate([inside, outside]))
        stars = np.where(items // CLUSTER_SIZE == home, rng.integers(4, 6, len(items)),
                         rng.integers(1, 4, len(items)))  # fmt: skip
        rows.append(pd.DataFrame({"user": user, "item": items, "rating": stars}))
    return Ratings.from_df(pd.concat(rows, ignore_index=True))


@pytest.fixture(scope="module")
def split(clusters):
    return split_by_user(clusters, frac=0.25, seed=3)


def tensors(ratings: Ratings):
    return (
        torch.from_numpy(ratings.user_idx.astype(np.int64)),
        torch.from_numpy(ratings.item_idx.astype(np.int64)),
        ratings.n_users,
        ratings.n_items,
    )


WEIGHTS = InteractionWeights(positive=4.0, low_weight=0.3)
FITS = {
    "ease": lambda r: fit_ease(*tensors(r), l2=20.0, ratings=torch.from_numpy(r.rating),
                               weights=WEIGHTS),
    "ials": lambda r: fit_ials(*tensors(r), n_factors=16, l2=0.03, unobserved_weight=0.05,
                               ratings=torch.from_numpy(r.rating), weights=WEIGHTS),
    "item_knn": lambda r: fit_item_knn(*tensors(r), n_neighbours=30,
                                       ratings=torch.from_numpy(r.rating), weights=WEIGHTS),
}  # fmt: skip


@pytest.fixture(scope="module")
def fitted(split) -> dict[str, TopNModel]:
    return {kind: fit(split.train) for kind, fit in FITS.items()}


def ndcg(scores_for, split) -> float:
    table = evaluate_scores(scores_for, split, ks=(10,))
    return float(table.ndcg.iloc[0])


@pytest.mark.parametrize("kind", list(FITS))
def test_models_find_the_planted_clusters(fitted, split, kind):
    counts = torch.from_numpy(split.train.item_counts().astype(np.float32))
    popular = ndcg(lambda block: counts.expand(len(block), -1).clone(), split)
    model = ndcg(lambda block: fitted[kind].score_items(torch.from_numpy(block)), split)
    # the 16 unseen items of a user's cluster hold the ~3 hits: about 0.4 is the ceiling
    assert model > 4.0 * popular and model > 0.3


@pytest.mark.parametrize("kind", ["ease", "item_knn"])
def test_fold_in_equals_a_known_user_exactly(fitted, split, kind):
    train = split.train
    for user in (0, 5, 17):
        mine = train.user_idx == user
        items = torch.from_numpy(train.item_idx[mine].astype(np.int64))
        ratings = torch.from_numpy(train.rating[mine])
        fresh = fitted[kind].score_new(items, ratings)
        known = fitted[kind].score_items(torch.tensor([user]))[0]
        assert torch.allclose(fresh, known, atol=1e-6)
        assert torch.equal(torch.topk(fresh, 10).indices, torch.topk(known, 10).indices)


def test_ials_fold_in_agrees_with_the_trained_factors(fitted, split):
    train, model = split.train, fitted["ials"]
    overlaps = []
    for user in range(0, 40, 4):
        mine = train.user_idx == user
        items = torch.from_numpy(train.item_idx[mine].astype(np.int64))
        fresh = model.score_new(items, torch.from_numpy(train.rating[mine]))
        fresh[items] = -torch.inf
        known = model.score_items(torch.tensor([user]))[0]
        known[items] = -torch.inf
        top_fresh, top_known = set(torch.topk(fresh, 10).indices.tolist()), torch.topk(known, 10)
        overlaps.append(len(top_fresh & set(top_known.indices.tolist())))
    assert np.mean(overlaps) >= 8


@pytest.mark.parametrize("kind", list(FITS))
def test_explain_parts_sum_to_the_score(fitted, kind):
    model = fitted[kind]
    history = torch.tensor([30, 3, 27, 11, 40])  # not sorted: parts follow this order
    ratings = torch.tensor([5.0, 2.0, 4.0, 5.0, 1.0])
    scores = model.score_new(history, ratings)
    for item in (26, 28, 150):
        parts = model.explain(history, item, ratings)
        assert parts.shape == (5,)
        assert float(parts.sum()) == pytest.approx(float(scores[item]), abs=1e-4)
    if kind != "ials":  # item-item weights: an item of another cluster explains little
        parts = model.explain(history, 26, ratings)
        assert parts[[0, 2]].abs().min() > parts[[1, 4]].abs().max()


def _dense_knn(rows, n_neighbours: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Item-kNN's definition in dense float64: every cosine, and the similarities kept
    by each item (by value: among equal cosines at the edge either may be kept)."""
    dense = rows.to_dense().double()
    norms = dense.pow(2).sum(0).sqrt()
    inverse = torch.where(norms > 0, 1.0 / norms, torch.zeros(()).double())
    cosine = (dense.T @ dense) * inverse[:, None] * inverse[None, :]
    cosine.fill_diagonal_(0.0)
    width = max(1, min(n_neighbours, rows.n_cols - 1))
    return cosine, torch.topk(cosine, width, dim=1).values


@pytest.mark.parametrize("seed", range(12))
def test_knn_matches_its_dense_definition_on_generated_shapes(seed):
    """Generated shapes, hostile ones included (one item, items nobody rated, users
    with one rating, all-equal weights that tie every cosine, more neighbours than
    items): the compiled lists and scores equal the dense definition."""
    from collabfilter.models.ranking.base import interaction_rows

    rng = np.random.default_rng(seed)
    n_users, n_items = int(rng.integers(1, 40)), int(rng.integers(1, 60))
    density = float(rng.choice([0.02, 0.2, 0.9]))
    pairs = np.argwhere(rng.random((n_users, n_items)) < density)
    if len(pairs) == 0:
        pairs = np.array([[0, 0]])
    users, items = (torch.from_numpy(pairs[:, k].astype(np.int64)) for k in (0, 1))
    stars = torch.from_numpy(rng.choice([1.0, 3.0, 4.0, 5.0], len(pairs)).astype(np.float32))
    weights = WEIGHTS if seed % 3 else InteractionWeights()  # plain weights: every tie
    rows = interaction_rows(users, items, n_users, n_items, stars, weights)
    n_neighbours = int(rng.integers(1, n_items + 3))
    model = fit_item_knn(users, items, n_users, n_items, n_neighbours=n_neighbours,
                         ratings=stars, weights=weights)  # fmt: skip
    cosine, top = _dense_knn(rows, n_neighbours)
    kept = model.similarities().to_dense().double()  # row j: the items j is kept for
    assert torch.allclose(
        kept.sort(dim=0, descending=True).values[: top.shape[1]].T, top.clamp(min=0), atol=1e-6
    )
    on = kept > 0
    assert torch.allclose(kept[on], cosine[on], atol=1e-6)  # kept entries are cosines
    assert (on.sum(0) <= top.shape[1]).all()
    expected = rows.to_dense().double() @ kept
    assert torch.allclose(model.score_items(torch.arange(n_users)).double(), expected, atol=1e-5)
    # cut out of longer lists with other cuts between: the very same neighbours
    from collabfilter.models.ranking.knn import NeighbourLists, item_knn_from_lists

    others = rng.integers(1, n_items + 3, 3).tolist()
    lists = NeighbourLists(rows, n_neighbours + int(rng.integers(0, 5)), others + [n_neighbours])
    shared = item_knn_from_lists(rows, weights, lists, n_neighbours)
    assert torch.equal(shared.similarities().to_dense(), model.similarities().to_dense())


@pytest.mark.parametrize("kind", list(FITS))
def test_safetensors_round_trip_rebuilds_from_settings(fitted, kind, tmp_path):
    model = fitted[kind]
    save_file(model.state_dict(), tmp_path / "model.safetensors")
    empty = TOPN_MODELS[model.settings()["kind"]].from_spec(model.spec())
    assert type(empty) is {"ease": EASE, "ials": ImplicitALS, "item_knn": ItemKNN}[kind]
    empty.load_state_dict(load_file(tmp_path / "model.safetensors"), strict=True)
    users = torch.arange(10)
    assert torch.equal(empty.score_items(users), model.score_items(users))
    assert empty.settings() == model.settings()


def test_interaction_weights_and_bad_input():
    weights = InteractionWeights(positive=4.0, low_weight=0.25)
    assert weights.of(torch.tensor([5.0, 4.0, 3.5]), 3).tolist() == [1.0, 1.0, 0.25]
    assert weights.of(None, 2).tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="low_weight"):
        InteractionWeights(4.0, 0.0)
    user, item = torch.tensor([0, 0]), torch.tensor([1, 1])
    with pytest.raises(ValueError, match="repeated"):
        fit_ease(user, item, 2, 3, l2=1.0)
    with pytest.raises(ValueError, match="at least one"):
        fit_ease(torch.tensor([0]), torch.tensor([1]), 2, 3, l2=1.0).score_new(torch.tensor([]))


def test_topn_config_validates_and_round_trips():
    config = TopNConfig(candidates=("ials",), ials_factors=(8, 16), memory_budget=2**20)
    assert config_from_dict(TopNConfig, config_to_dict(config)) == config
    with pytest.raises(ConfigError, match="candidates"):
        TopNConfig(candidates=("svd",))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="low_rating_weights"):
        TopNConfig(low_rating_weights=(0.0,))
    with pytest.raises(ConfigError, match="carve_fraction"):
        TopNConfig(carve_fraction=1.0)


SMALL = dict(ease_l2_scales=(1.0, 4.0), ials_factors=(8,), ials_l2=(0.03,),
             ials_unobserved_scales=(3.0,), knn_neighbours=(30,))  # fmt: skip


def test_automatic_choice_reports_every_candidate(split):
    model, report = fit_topn(split.train, TopNConfig(**SMALL))
    assert report.kind == model.kind and report.settings == model.settings()
    table = report.candidates
    assert set(table.model) == {"ease", "ials", "item_knn"}
    assert (table.note == "chosen").sum() == 1
    chosen = table[table.note == "chosen"].iloc[0]
    assert chosen.ndcg == table.ndcg.max() and "best NDCG@10" in report.reason
    assert ndcg(lambda block: model.score_items(torch.from_numpy(block)), split) > 0.3
    assert "carved" in str(report) and report.kind in str(report)


def test_memory_budget_skips_what_would_not_fit(split):
    sizes = (split.train.n_users, split.train.n_items, len(split.train))
    budget = ImplicitALS.memory_bytes(*sizes, n_factors=8) + 1
    assert EASE.memory_bytes(*sizes) > budget  # EASE's three items x items matrices
    config = TopNConfig(candidates=("ease", "ials"), memory_budget=budget, **SMALL)
    model, report = fit_topn(split.train, config)
    assert model.kind == "ials"
    ease = report.candidates[report.candidates.model == "ease"]
    assert ease.note.str.startswith("skipped").all() and ease.ndcg.isna().all()
    assert "over the memory budget: ease" in report.reason
    with pytest.raises(DataError, match="memory_budget"):
        fit_topn(split.train, TopNConfig(candidates=("ease",), memory_budget=1000))


def test_choice_never_sees_the_test_part(split):
    config = TopNConfig(candidates=("ease", "item_knn"), **SMALL)
    _, with_test = fit_topn(split.train, config)
    alone = Ratings.from_df(split.train.to_frame())  # rebuilt without any test rating
    assert alone.n_items == split.train.n_items  # every item keeps a training rating
    _, without = fit_topn(alone, config)
    assert without.settings == with_test.settings
    assert np.allclose(without.candidates.ndcg, with_test.candidates.ndcg, equal_nan=True)


def test_fits_are_vectorised_on_a_larger_catalogue():
    ratings = generate_ratings(3000, 2500, 150_000, seed=4).ratings
    shape = tensors(ratings)
    start = time.perf_counter()
    models = [fit_ease(*shape, l2=100.0), fit_item_knn(*shape, n_neighbours=50),
              fit_ials(*shape, n_factors=32, sweeps=4)]  # fmt: skip
    for model in models:
        for block in torch.arange(ratings.n_users).split(1024):
            torch.topk(model.score_items(block), 20)
    # a loop per user or item would take minutes here
    assert time.perf_counter() - start < 30.0


@pytest.mark.realdata
def test_automatic_choice_on_ml100k(ml100k):
    split = split_by_user(ml100k, frac=0.2, seed=42)
    model, report = fit_topn(split.train)
    table = evaluate_scores(lambda block: model.score_items(torch.from_numpy(block)), split)
    metrics = table.set_index("k")
    assert metrics.loc[10, "users"] == 927
    assert metrics.loc[10, "ndcg"] >= 0.33 and metrics.loc[20, "recall"] >= 0.38
    assert report.select_seconds < 60


@pytest.mark.parametrize("kind", ["ease", "ials", "item_knn"])
def test_explaining_many_items_at_once_is_explaining_each(kind):
    from collabfilter.models import fit_ease, fit_ials, fit_item_knn

    ratings = generate_ratings(80, 120, 2000, n_factors=3, seed=4).ratings
    users, items = torch.from_numpy(ratings.user_idx), torch.from_numpy(ratings.item_idx)
    fit = {
        "ease": lambda: fit_ease(users, items, 80, 120, l2=5.0),
        "ials": lambda: fit_ials(users, items, 80, 120, n_factors=4, sweeps=2),
        "item_knn": lambda: fit_item_knn(users, items, 80, 120, n_neighbours=10),
    }[kind]
    model = fit()
    history, picks = torch.tensor([3, 7, 11, 20]), torch.tensor([5, 9, 40])
    many = model.explain_many(history, picks)
    assert many.shape == (4, 3)
    for column, item in enumerate(picks.tolist()):
        assert torch.allclose(many[:, column], model.explain(history, item), atol=1e-5)


SHAPES = [(30, 200, 900), (60, 150, 2000), (150, 80, 3000), (8, 400, 420)]  # users x items


@pytest.mark.parametrize(("n_users", "n_items", "n"), SHAPES)
def test_ease_from_the_spectrum_is_ease_from_the_inverse(n_users, n_items, n):
    """One decomposition of the users' side serves every penalty: the same weights and
    scores as a Cholesky inverse per penalty, with weighted interactions too."""
    from collabfilter.models.ranking.base import interaction_rows
    from collabfilter.models.ranking.csr import gram
    from collabfilter.models.ranking.ease import GramSpectrum, ease_weights

    ratings = generate_ratings(n_users, n_items, n, seed=n_users).ratings
    users, items, _, _ = tensors(ratings)
    rows = interaction_rows(users, items, n_users, n_items, torch.from_numpy(ratings.rating),
                            WEIGHTS)  # fmt: skip
    dense = rows.to_dense().double()
    spectrum = GramSpectrum(rows)
    for l2 in (0.1, 3.0, 40.0, 900.0):
        direct = ease_weights(gram(rows).double(), l2)
        expected = dense @ direct
        close = {"rtol": 1e-4, "atol": 1e-4 * float(direct.abs().max())}
        assert torch.allclose(spectrum.item_weights(l2).double(), direct, **close)
        scores = spectrum.scorer(l2)(torch.arange(n_users)).double()
        assert torch.allclose(scores, expected, **close)


def test_fit_ease_takes_the_spectrum_when_it_pays():
    """Fewer users than items by enough: the users' side is decomposed (the same model
    as the inverse); otherwise one Cholesky inverse."""
    from collabfilter.models.ranking.csr import SparseRows
    from collabfilter.models.ranking.ease import ease_weights, spectrum_pays

    assert spectrum_pays(40, 600, 1) and spectrum_pays(400, 600, 4)
    assert not spectrum_pays(500, 600, 1) and not spectrum_pays(600, 40, 100)
    ratings = generate_ratings(40, 600, 3000, seed=2).ratings
    users, items, _, _ = tensors(ratings)
    model = fit_ease(users, items, 40, 600, l2=10.0)
    rows = SparseRows.from_pairs(users, items, torch.ones(len(users)), 40, 600)
    from collabfilter.models.ranking.csr import gram

    direct = ease_weights(gram(rows), 10.0)
    assert torch.allclose(model.item_weights, direct, atol=1e-5)
    assert float(model.item_weights.diagonal().abs().max()) == 0.0


def test_the_memory_budget_counts_the_spectrums_peak():
    """400 users x 600 items: the choice may decompose the users' side, whose dense users
    x items matrices need more than the inverse; a budget between the two skips EASE,
    saying so, rather than exceeding it unseen."""
    from collabfilter.models.ranking import ease

    sizes = (400, 600, 8000)
    spectrum, inverse = ease.GramSpectrum.memory_bytes(*sizes), ease.EASE.memory_bytes(*sizes)
    assert ease.spectrum_pays(400, 600, 4) and spectrum > inverse
    assert ease.ease_peak_bytes(*sizes) == spectrum
    assert ease.ease_peak_bytes(600, 400, 8000) == ease.EASE.memory_bytes(600, 400, 8000)
    ratings = generate_ratings(400, 600, 8000, seed=4).ratings
    budget = (spectrum + inverse) // 2
    config = TopNConfig(candidates=("ease", "item_knn"), low_rating_weights=(1.0,), seed=0,
                        memory_budget=budget)  # fmt: skip
    _, report = fit_topn(ratings, config)
    notes = report.candidates.set_index("model").note
    assert notes["ease"].str.startswith("skipped").all()


@pytest.mark.parametrize("weights", [InteractionWeights(), WEIGHTS])
def test_shorter_neighbour_lists_are_the_fit_with_fewer_neighbours(split, weights):
    """A grid of neighbour counts shares one pass: each count's model equals the model
    fitted with that count from scratch."""
    from collabfilter.models.ranking.base import interaction_rows
    from collabfilter.models.ranking.knn import NeighbourLists, item_knn_from_lists

    shape = tensors(split.train)
    ratings = torch.from_numpy(split.train.rating)
    rows = interaction_rows(*shape, ratings, weights)
    lists = NeighbourLists(rows, 120, (30, 1, 7))
    for count in (1, 7, 30, 120):
        shared = item_knn_from_lists(rows, weights, lists, count)
        alone = fit_item_knn(*shape, n_neighbours=count, ratings=ratings, weights=weights)
        # the same similarities per item (among equal ones, either may be kept)
        kept = [model.similarities().to_dense().sort(dim=0).values for model in (shared, alone)]
        assert torch.allclose(*kept, atol=1e-6)
        if count == 120:  # no ties at the edge: the very same model
            block = torch.arange(split.train.n_users)
            assert torch.allclose(shared.score_items(block), alone.score_items(block))
    for count in (121, 8):  # longer than the lists, or a count they were not cut for
        with pytest.raises(ValueError, match="cannot give"):
            lists.keep(count)


def test_ials_warm_start_continues_a_fit(split):
    """Started from a fit's own factors, a few sweeps land where more sweeps from the
    random start do; wrong shapes are refused."""
    shape = tensors(split.train)
    ratings = torch.from_numpy(split.train.rating)
    settings = dict(n_factors=16, l2=0.03, unobserved_weight=0.05, ratings=ratings,
                    weights=WEIGHTS)  # fmt: skip
    cold = fit_ials(*shape, sweeps=12, **settings)
    half = fit_ials(*shape, sweeps=8, **settings)
    warm = fit_ials(*shape, sweeps=4, start=(half.user_factors, half.item_factors), **settings)
    block = torch.arange(split.train.n_users)
    assert torch.allclose(warm.score_items(block), cold.score_items(block), atol=1e-3)
    with pytest.raises(ValueError, match="start factors"):
        fit_ials(*shape, sweeps=1, start=(half.user_factors[:, :8], half.item_factors),
                 **settings)  # fmt: skip


def test_ials_is_tuned_at_its_smallest_factor_count_first(split):
    """The factor count drives the fit's cost: every other setting is searched at the
    smallest count, and larger counts are tried once, at the end."""
    config = TopNConfig(candidates=("ials",), ials_factors=(16, 4, 8), ials_l2=(0.03, 0.1),
                        ials_unobserved_scales=(3.0,), ials_sweeps=3)  # fmt: skip
    _, report = fit_topn(split.train, config)
    factors = [settings["n_factors"] for settings in report.candidates.settings]
    larger = [count for count in factors if count > 4]
    assert larger and factors == [4] * (len(factors) - len(larger)) + larger  # larger last
    assert larger == sorted(larger) and len(larger) <= 2


@pytest.mark.parametrize("seed", range(40))
def test_a_grid_climb_finds_the_sweeps_best_on_one_peak_and_a_local_best_else(seed):
    from collabfilter.models.ranking.choose import Grid

    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 8))
    values = tuple(float(v) for v in rng.permutation(n) + 1)  # unsorted on purpose
    repeated = values + values[: int(rng.integers(0, n + 1))]  # repeats count once
    grid = Grid("setting", repeated, cheapest_first=bool(rng.integers(2)))
    peak = int(rng.integers(n))
    distance = np.abs(np.arange(n) - peak) + rng.random(n) * 0.1  # one peak
    bumpy = rng.random(n)  # any shape
    for scores, one_peak in ((-distance, True), (bumpy, False)):
        asked: list[float] = []

        def score(value, scores=scores, asked=asked):
            asked.append(value)
            return float(scores[grid.values.index(value)])

        best = grid.values.index(grid.climb(score))
        assert grid.values == tuple(sorted(values))
        assert asked[0] == grid.start and len(asked) == len(set(asked)) <= n
        neighbours = [scores[j] for j in (best - 1, best + 1) if 0 <= j < n]
        assert all(scores[best] >= other for other in neighbours)  # a local best
        if one_peak:  # the sweep's best, for the points up to one past it
            start = grid.values.index(grid.start)
            assert best == peak and len(asked) <= abs(peak - start) + 3


@pytest.mark.parametrize("seed", range(20))
def test_neighbour_lists_break_ties_to_the_lower_item(seed):
    """Plain weights make co-counts integers and ties common: each list (and each cut
    of it) is exactly the best by cosine, then by lower item index, as a full sort
    computed the same way gives it."""
    from collabfilter.models.ranking.base import interaction_rows
    from collabfilter.models.ranking.knn_compiled import neighbour_lists

    rng = np.random.default_rng(seed)
    n_users, n_items = int(rng.integers(2, 30)), int(rng.integers(2, 80))
    pairs = np.argwhere(rng.random((n_users, n_items)) < float(rng.choice([0.1, 0.4, 0.8])))
    pairs = pairs if len(pairs) else np.array([[0, 0]])
    users, items = (torch.from_numpy(pairs[:, k].astype(np.int64)) for k in (0, 1))
    rows = interaction_rows(users, items, n_users, n_items, None, InteractionWeights())
    dense = rows.to_dense().double()
    norms = dense.pow(2).sum(0)
    inverse = torch.where(norms > 0, norms.rsqrt(), torch.zeros((), dtype=torch.float64))
    counts = (dense.T @ dense).numpy()  # exact integers, as the compiled sums
    width = int(rng.integers(1, n_items))
    cuts = sorted({int(c) for c in rng.integers(1, width + 1, 3)})
    listed, _ = neighbour_lists(rows, width, cuts)
    for i in range(n_items):
        others = np.array([j for j in range(n_items) if j != i and counts[i, j] > 0])
        if len(others) == 0:
            continue
        cosine = np.array([counts[i, j] * float(inverse[i]) * float(inverse[j]) for j in others])
        ranked = others[np.lexsort((others, -cosine))]
        for cut in [width, *cuts]:
            m = min(cut, len(others))
            assert set(listed[i, :m].tolist()) == set(ranked[:m].tolist()), (i, cut)

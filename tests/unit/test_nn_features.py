"""Side features in the nn model (LightFM's rule): the features' part of a vector,
what a learner attaches, what it is worth, new users known by features, model files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from collabfilter import generate_ratings, split_cold_users, split_random
from collabfilter.config import RunOptions
from collabfilter.data.csr import SparseRows
from collabfilter.errors import ModelFileError
from collabfilter.models import EmbeddingNN
from collabfilter.models.side import FeatureEmbedding
from collabfilter.train import collab_learner

QUIET = RunOptions(seed=0, progress=False)


def _random_rows(rng: np.random.Generator, n_rows: int, n_cols: int) -> SparseRows:
    density = float(rng.choice([0.0, 0.05, 0.3, 1.0]))
    cells = np.argwhere(rng.random((n_rows, n_cols)) < density)
    values = torch.from_numpy(rng.normal(size=len(cells)).astype(np.float32))
    rows, cols = (torch.from_numpy(cells[:, k].astype(np.int64)) for k in (0, 1))
    return SparseRows.from_pairs(rows, cols, values, n_rows, n_cols)


@pytest.mark.parametrize("seed", range(25))
def test_the_features_part_is_the_dense_product_and_its_gradient(seed):
    """Generated shapes (empty rows, an empty matrix, one column, repeated and empty
    batches): ``F[idx] @ W`` and its gradient by ``W`` match the dense definition."""
    rng = np.random.default_rng(seed)
    n_rows, n_cols, width = (int(rng.integers(1, k)) for k in (40, 30, 9))
    rows = _random_rows(rng, n_rows, n_cols)
    embedding = FeatureEmbedding(n_rows, n_cols, width)
    embedding.set_rows(rows)
    with torch.no_grad():
        embedding.weight.normal_()
    idx = torch.from_numpy(rng.integers(0, n_rows, int(rng.integers(0, 50))))
    part = embedding(idx)
    dense = rows.to_dense()[idx]
    torch.testing.assert_close(part, dense @ embedding.weight.detach(), atol=1e-5, rtol=1e-5)
    upstream = torch.randn_like(part)
    (part * upstream).sum().backward()
    torch.testing.assert_close(embedding.weight.grad, dense.T @ upstream, atol=1e-4, rtol=1e-4)


def test_feature_rows_of_another_shape_are_refused():
    embedding = FeatureEmbedding(5, 3, 2)
    with pytest.raises(ValueError, match="feature rows must be 5 x 3"):
        embedding.set_rows(_random_rows(np.random.default_rng(0), 4, 3))
    with pytest.raises(ValueError, match="must be 3 long"):
        embedding.of_row(torch.zeros(4))


def _rmse(learner, valid) -> float:
    return float(np.sqrt(np.mean((learner.predict_ratings(valid) - valid.rating) ** 2)))


def test_a_learner_attaches_the_features_and_none_removes_them():
    planted = generate_ratings(200, 150, 6000, n_genres=6, n_user_groups=4, seed=1).ratings
    learner = collab_learner(planted, model="nn", options=QUIET)
    assert learner.features_used.describe() == "user: group; item: genres"
    module = learner.model
    assert isinstance(module, EmbeddingNN) and module.user_features is not None
    assert module.item_features is not None
    encoded = planted.item_features.encode(planted.items).matrix
    assert torch.equal(module.item_features.rows().indices, encoded.indices)
    assert module.spec()["n_item_features"] == encoded.n_cols
    none = collab_learner(planted, model="nn", options=QUIET, features="none")
    assert none.model.user_features is None and none.model.item_features is None
    only = collab_learner(planted, model="nn", options=QUIET, features=["item:genres"])
    assert only.model.user_features is None and only.model.item_features is not None


def test_reattaching_keeps_learned_features_only_for_the_same_rows():
    planted = generate_ratings(200, 120, 4000, n_genres=5, n_user_groups=3, seed=2).ratings
    learner = collab_learner(planted, model="nn", options=QUIET)
    learner.fit_one_cycle(1)
    module = learner.model
    learned = module.item_features.weight.detach().clone()
    assert learned.abs().sum() > 0
    rows = module.item_features.rows()
    module.attach_features(module.user_features.rows(), rows)  # the same: training goes on
    assert torch.equal(module.item_features.weight, learned)
    moved = SparseRows(rows.indptr, rows.indices.flip(0), rows.values, rows.n_cols)
    with pytest.raises(ValueError, match="item feature rows must be"):
        module.attach_features(None, module.user_features.rows())  # a row per user
    assert module.user_features is not None  # refused before anything changed
    module.attach_features(None, moved)  # other rows of the same shape: from zero
    assert module.user_features is None and module.item_features.weight.abs().sum() == 0


def test_a_new_user_without_ratings_leaves_the_model_as_it_was():
    from collabfilter.models.family import FoldContext

    planted = generate_ratings(200, 120, 4000, n_genres=5, n_user_groups=3, seed=2).ratings
    learner = collab_learner(planted, model="nn", options=QUIET)
    learner.fit_one_cycle(1)
    module = learner.model
    module.train()
    context = learner.fold_context()
    assert isinstance(context, FoldContext)
    user = module.fold_in(torch.zeros(0, dtype=torch.long), torch.zeros(0), context)
    assert module.training and torch.equal(user.embedding, torch.zeros_like(user.embedding))


def test_seeded_fits_with_features_give_the_same_weights():
    planted = generate_ratings(200, 120, 4000, n_genres=5, n_user_groups=3, seed=2).ratings
    states = []
    for _ in range(2):
        learner = collab_learner(planted, model="nn", options=QUIET)
        learner.fit_one_cycle(2)
        states.append(learner.model.state_dict())
    for name, value in states[0].items():
        assert torch.equal(value, states[1][name]), name


def test_planted_features_lower_the_neural_error():
    """Features that explain part of the factors: the neural model's error falls
    (synthetic 400 x 300: 0.8816 -> 0.8707)."""
    planted = generate_ratings(400, 300, 12_000, n_genres=10, n_user_groups=6, seed=4).ratings
    split = split_random(planted, 0.1, seed=0)
    rmse = {}
    for features in ("none", "auto"):
        learner = collab_learner(split.train, model="nn", options=QUIET, features=features)
        learner.fit_recipe()
        rmse[features] = _rmse(learner, split.valid)
    assert rmse["auto"] < rmse["none"] - 0.005, rmse


def test_new_users_known_by_features_alone_are_placed_by_them():
    """Users held out whole: folded in from their group alone (no ratings), their
    held-out ratings are predicted better than with no features (0.903 against 0.935)."""
    planted = generate_ratings(600, 300, 15_000, n_user_groups=5, feature_share=0.8,
                               seed=9).ratings  # fmt: skip
    train, valid = split_cold_users(planted, 0.1, seed=2)
    learner = collab_learner(train, model="nn", options=QUIET)
    learner.fit_recipe()
    groups = planted.user_features.frame["group"]
    errors: dict[str, list[float]] = {"own": [], "none": []}
    for user, rows in valid.to_frame().groupby("user"):
        items = learner.items.index(rows.item.to_numpy())
        for label, row in (("own", learner.encode_user_features({"group": groups[user]})),
                           ("none", None)):  # fmt: skip
            folded = learner.fold_in_indices(np.zeros(0, np.int64), np.zeros(0), row)
            predicted = learner.predict_folded(folded, items).numpy()
            assert np.isfinite(predicted).all()
            errors[label].extend((predicted - rows.rating.to_numpy()) ** 2)
    own, none = (float(np.sqrt(np.mean(errors[k]))) for k in ("own", "none"))
    assert own < none - 0.01, (own, none)


def test_model_files_keep_the_features_and_refuse_forged_ones(tmp_path):
    from test_model_file_forgery import forge

    import collabfilter as cf

    planted = generate_ratings(150, 120, 3000, n_genres=4, n_user_groups=3, seed=3).ratings
    learner = collab_learner(planted, model="nn", options=QUIET)
    learner.fit_one_cycle(2)
    path = learner.save(tmp_path / "m.cf")
    loaded = cf.load_model(path)
    np.testing.assert_array_equal(loaded.predict_ratings(planted), learner.predict_ratings(planted))
    assert torch.equal(loaded.model.item_features.weight, learner.model.item_features.weight)
    n_features = learner.model.spec()["n_item_features"]

    def out_of_range(tensors):
        tensors["rating.item_features.indices"][0] = n_features

    def pointers_fall(tensors):
        tensors["rating.item_features.indptr"][1] = tensors["rating.item_features.indptr"][-1] + 1

    def wider(document):
        document["parts"]["rating"]["module"]["args"]["n_item_features"] = n_features + 1

    def wider_tables(tensors):
        weight = tensors["rating.item_features.weight"]
        tensors["rating.item_features.weight"] = torch.cat([weight, weight[:1]])

    def unsorted(tensors):
        indptr, indices = (
            tensors["rating.item_features.indptr"],
            tensors["rating.item_features.indices"],
        )
        row = int(torch.nonzero(indptr[1:] - indptr[:-1] > 1)[0])
        first = int(indptr[row])
        indices[first], indices[first + 1] = indices[first + 1].clone(), indices[first].clone()

    def repeated(tensors):
        indptr, indices = (
            tensors["rating.item_features.indptr"],
            tensors["rating.item_features.indices"],
        )
        row = int(torch.nonzero(indptr[1:] - indptr[:-1] > 1)[0])
        indices[int(indptr[row]) + 1] = indices[int(indptr[row])]

    forgeries = [
        (None, unsorted, "rise within each row"),
        (None, repeated, "rise within each row"),
        (None, out_of_range, "column indices"),
        (None, pointers_fall, "row pointers"),
        (wider, wider_tables, "reads 5 item feature columns; its encoder makes 4"),
    ]
    for number, (document, tensors, problem) in enumerate(forgeries):
        with pytest.raises(ModelFileError, match=problem):
            cf.load_model(forge(path, tmp_path / f"forged{number}.cf", document, tensors))

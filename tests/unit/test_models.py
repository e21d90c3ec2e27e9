import pytest
import torch

from collabfilter.config import config_from_dict, config_to_dict
from collabfilter.data import RatingScale
from collabfilter.errors import ConfigError
from collabfilter.models import (
    BayesMFConfig,
    DotConfig,
    DotProduct,
    DotProductBias,
    EmbeddingNN,
    NNConfig,
    TrainConfig,
    build_model,
    embedding_size,
)
from collabfilter.models.nn import dropout as dropout_module
from collabfilter.models.nn.dropout import Dropout
from collabfilter.models.rows import gather_rows, row_dot

STARS = RatingScale(1, 5, 1)


def test_row_ops_match_autograd_with_repeated_rows():
    torch.manual_seed(0)
    left = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    right = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(6, dtype=torch.float64, requires_grad=True)
    users, items = torch.tensor([0, 3, 3, 5, 0]), torch.tensor([4, 4, 1, 0, 2])
    weights = torch.arange(1.0, 6.0, dtype=torch.float64)
    ((row_dot(left, right, users, items) + gather_rows(bias, users)) * weights).sum().backward()
    dense = [t.detach().clone().requires_grad_() for t in (left, right, bias)]
    (((dense[0][users] * dense[1][items]).sum(-1) + dense[2][users]) * weights).sum().backward()
    for sparse, reference in zip((left, right, bias), dense, strict=True):
        assert sparse.grad.is_sparse
        assert torch.allclose(sparse.grad.to_dense(), reference.grad)


@pytest.mark.parametrize(
    "model",
    [
        DotProduct(7, 9, 3),
        DotProduct(7, 9, 3, y_range=(1, 5)),
        DotProductBias(7, 9, 3, y_range=(0.5, 5.5)),
        EmbeddingNN(7, 9, layers=(8, 4), y_range=(0.5, 5.5), batch_norm=True, dropout=0.1),
        EmbeddingNN(7, 9, layers=(8,), biases=False),
    ],
)
def test_shapes_and_range(model):
    model.eval()
    users, items = torch.tensor([0, 6, 3]), torch.tensor([8, 0, 4])
    out = model(users, items)
    assert out.shape == (3,) and out.dtype == torch.float32
    if getattr(model, "y_range", None) is not None:
        low, high = model.y_range
        assert ((out > low) & (out < high)).all()


def test_parameter_names_read_naturally():
    model = DotProductBias(4, 6, 2)
    assert model.user_factors.shape == (4, 2) and model.item_factors.shape == (6, 2)
    assert model.user_bias.shape == (4,) and model.item_bias.shape == (6,)
    assert model.n_factors == 2


def test_data_statistics_start_predictions_at_the_mean():
    model = DotProductBias(3, 4, 2, y_range=(0.5, 5.5))
    torch.nn.init.zeros_(model.user_factors)
    model.set_data_statistics(torch.tensor([5, 1, 0]), torch.tensor([2, 2, 1, 1]), 3.6)
    assert torch.allclose(model(torch.tensor([0, 1]), torch.tensor([0, 3])), torch.tensor(3.6))
    # activity is standardised over ratings: mean 0 weighted by counts
    weights = torch.tensor([5.0, 1.0, 0.0])
    assert float((model.user_activity * weights).sum() / weights.sum()) == pytest.approx(
        0, abs=1e-6
    )
    assert torch.allclose(
        model.activity_of(torch.tensor([5]), kind="user"), model.user_activity[:1]
    )


def test_embedding_sizes_follow_fastai_rule():
    assert (embedding_size(944), embedding_size(1665)) == (74, 102)  # fastai's ml-100k figures
    assert embedding_size(943) == 74 and embedding_size(10**9) == 600
    model = EmbeddingNN(943, 1682)
    assert model.user_embedding.shape[1] == 74 and model.item_embedding.shape[1] == 102


def test_build_model_uses_config_and_data_range():
    model = build_model(DotConfig(n_factors=5), 3, 4, STARS)
    assert isinstance(model, DotProductBias) and model.y_range == (0.5, 5.5)
    plain = build_model(DotConfig(biases=False, y_range=None), 3, 4, STARS)
    assert isinstance(plain, DotProduct) and plain.y_range is None
    fastai_like = build_model(NNConfig(y_range=(0, 5.5), biases=False), 3, 4, RatingScale(1, 2))
    assert isinstance(fastai_like, EmbeddingNN) and fastai_like.y_range == (0.0, 5.5)


@pytest.mark.parametrize(
    ("cls", "changes", "message"),
    [
        (DotConfig, {"n_factors": 0}, "n_factors"),
        (BayesMFConfig, {"n_factors": 0}, "n_factors"),
        (DotConfig, {"y_range": (5, 1)}, "y_range"),
        (NNConfig, {"y_range": (5, 1)}, "y_range"),
        (NNConfig, {"dropout": 1.0}, "dropout"),
        (TrainConfig, {"lr": 0}, "lr must be > 0"),
        (TrainConfig, {"optimizer": "lbfgs"}, "optimizer must be one of"),
        (TrainConfig, {"weight_decay": -1}, "weight_decay"),
        (TrainConfig, {"early_stopping": 0}, "early_stopping"),
    ],
)
def test_configs_validate_themselves(cls, changes, message):
    with pytest.raises(ConfigError, match=message):
        cls(**changes)


def test_configs_round_trip_through_dicts():
    configs = (
        NNConfig(layers=(3, 2), y_range=(0, 5.5)),
        DotConfig(biases=False),
        TrainConfig(epochs=3),
    )
    for config in configs:
        assert config_from_dict(type(config), config_to_dict(config)) == config
    with pytest.raises(ConfigError, match="unknown TrainConfig field"):
        config_from_dict(TrainConfig, {"epoch": 3})


@pytest.mark.parametrize("p", [0.05, 0.3, 0.5, 0.9])
def test_dropout_keeps_the_expected_share_scaled_and_is_seeded(p):
    layer = Dropout(p)
    x = torch.ones(400, 1_001)  # not a multiple of the three elements a draw decides
    torch.manual_seed(0)
    out = layer(x)
    kept = out != 0
    share = kept.float().mean().item()
    assert abs(share - (1 - p)) < 4 * (p * (1 - p) / x.numel()) ** 0.5  # 4 standard errors
    # the mean is kept: values are scaled by the inverse of the exact keep probability
    assert abs(out[kept][0].item() * (1 - p) - 1) < 1e-4
    assert torch.equal(out[kept], torch.full_like(out[kept], out[kept][0].item()))
    # the elements one random draw decides are independent of each other
    pairs = kept.view(-1)[: 3 * (x.numel() // 3)].view(-1, 3).float()
    both = (pairs[:, 0] * pairs[:, 1]).mean().item()
    assert abs(both - (1 - p) ** 2) < 0.01
    torch.manual_seed(0)
    assert torch.equal(layer(x), out)
    assert not torch.equal(layer(x), out)
    assert torch.equal(layer.eval()(x), x)


def test_dropout_off_the_cpu_is_torchs_own(monkeypatch):
    def cpu_only(*args):
        raise AssertionError("the CPU mask was drawn for another device")

    monkeypatch.setattr(dropout_module, "_pieces_at_least", cpu_only)
    out = Dropout(0.3)(torch.ones(4, 5, device="meta"))
    assert out.device.type == "meta" and out.shape == (4, 5)


def test_dropout_edge_cases_and_gradient():
    x = torch.ones(5, 7)
    assert torch.equal(Dropout(1.0)(x), torch.zeros_like(x))
    assert torch.equal(Dropout(0.0)(x), x)
    assert Dropout(0.999_999)(torch.ones(100_000)).count_nonzero() < 10
    grad = torch.ones(3, 4, requires_grad=True)
    Dropout(0.5)(grad).sum().backward()
    assert set(grad.grad.unique().tolist()) <= {0.0, 2.0}

"""Placing a new user in a dot model from a few ratings, without retraining.

The user's factors and bias minimise the training objective restricted to this user,
with the item side fixed: half the squared error of the predicted ratings plus the
per-rating weight decay a trained user with this many ratings had
(:func:`collabfilter.sgd.decay.new_user_decay`). The problem has only ``factors + 1``
unknowns, so damped Gauss-Newton steps (one small linear solve each) converge in a few
iterations. Computed on the CPU in float64, whatever device the model is on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from collabfilter.errors import CollabFilterError
from collabfilter.models.dot.formula import TORCH
from collabfilter.models.family import FoldContext, FoldedUser
from collabfilter.sgd import TrainConfig
from collabfilter.sgd.decay import new_user_decay

if TYPE_CHECKING:
    from collabfilter.models.dot.module import DotProductBias

ITERATIONS = 30


@dataclass(frozen=True)
class DotUser(FoldedUser):
    """A folded-in user of a dot model: factors, bias (0 without biases) and activity."""

    factors: Tensor
    bias: float
    activity: float


@torch.no_grad()
def place_user(
    model: DotProductBias, item_idx: Tensor, ratings: Tensor, context: FoldContext
) -> DotUser:
    """The folded-in user who rated ``item_idx`` with ``ratings`` (see the module).

    Raises:
        CollabFilterError: when the model's sgd training config is unknown.
    """
    config = context.fit_config
    if not isinstance(config, TrainConfig):
        raise CollabFilterError("fold-in of a dot model needs its sgd training config")
    n = int(item_idx.numel())
    factor_decay, bias_decay = new_user_decay(config, context.user_counts, n)
    index = item_idx.cpu().long()
    design = model.item_factors.detach().cpu()[index].double()
    fixed = torch.zeros(n, dtype=torch.float64)
    activity = 0.0
    if model.biased:
        activity = float(model.activity_of(torch.tensor([n]), kind="user")[0].cpu())
        beta_user, _ = model.activity_weights()
        user_prior = TORCH.effect(0.0, beta_user, activity)
        item_effect = model.item_effect().detach().cpu()[index].double()
        fixed = TORCH.logit(0.0, user_prior, item_effect, float(model.offset))
        design = torch.cat([design, torch.ones(n, 1, dtype=torch.float64)], dim=1)
    decay = torch.full((design.shape[1],), n * factor_decay, dtype=torch.float64)
    if model.biased:
        decay[-1] = n * bias_decay
    theta = gauss_newton(design, fixed, ratings.cpu().double(), decay, *model.low_span)
    factors = theta[:-1] if model.biased else theta
    bias = float(theta[-1]) if model.biased else 0.0
    return DotUser(factors.float(), bias, activity)


def gauss_newton(
    design: Tensor, fixed: Tensor, target: Tensor, decay: Tensor, low: float, span: float
) -> Tensor:
    """Minimise ``0.5 |rating(design @ theta + fixed) - target|^2 + 0.5 theta' diag(decay)
    theta`` (``rating`` of the dot formula) by damped Gauss-Newton."""
    theta = torch.zeros(design.shape[1], dtype=torch.float64)
    regulariser = torch.diag(decay) + 1e-6 * torch.eye(len(theta), dtype=theta.dtype)
    for _ in range(ITERATIONS):
        x = design @ theta + fixed
        error = TORCH.rating(x, low, span) - target
        slope = TORCH.gradient(x, torch.ones_like(x), span)  # d rating / dx
        jacobian = design * slope.unsqueeze(1)
        gradient = jacobian.T @ error + decay * theta
        step = torch.linalg.solve(jacobian.T @ jacobian + regulariser, gradient)
        theta = theta - step
        if float(step.abs().max()) < 1e-7:
            break
    return theta

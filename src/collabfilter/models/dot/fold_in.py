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

import torch
from torch import Tensor

from collabfilter.errors import CollabFilterError
from collabfilter.models.dot.formula import TORCH
from collabfilter.models.family import FoldContext, FoldedUser
from collabfilter.sgd import TrainConfig
from collabfilter.sgd.decay import new_user_decay

ITERATIONS = 30


@dataclass(frozen=True)
class DotUser(FoldedUser):
    """A folded-in user of a dot model: factors, bias (0 without biases) and activity."""

    factors: Tensor
    bias: float
    activity: float


def new_user_decays(context: FoldContext, n: int) -> tuple[float, float]:
    """The per-rating ``(factor, bias)`` decay a trained user with ``n`` ratings had: what
    a folded-in user of an sgd-trained model is regularised by.

    Raises:
        CollabFilterError: when the model's sgd training config is unknown.
    """
    config = context.fit_config
    if not isinstance(config, TrainConfig):
        raise CollabFilterError("fold-in of a model trained by sgd needs its training config")
    return new_user_decay(config, context.user_counts, n)


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

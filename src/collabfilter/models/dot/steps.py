"""Which form of the sgd step trains a dot model.

Every form does the dot formula's arithmetic (:mod:`~collabfilter.models.dot.formula`)
and keeps a regime where it is the one that applies:

- ``compiled``: one compiled, parallel loop per batch
  (:mod:`~collabfilter.models.dot.compiled`, numba), on the CPU with float32 tables;
  the fastest there at every size ``benchmarks/bench_accuracy.py`` and
  ``benchmarks/bench_scale.py`` measure;
- ``gather``: gathers and ``index_add_`` (:mod:`~collabfilter.models.dot.gather`), on
  other devices and dtypes;
- ``autograd``: the generic step (:mod:`collabfilter.sgd.steps`), for what the closed
  forms do not cover (momentum, clipping, Adam).

``RunOptions.step`` chooses; ``"auto"`` applies the rules above in that order.
"""

from __future__ import annotations

from typing import Literal

import torch

from collabfilter.config import RunOptions, StepForm
from collabfilter.data.tensors import RatingTensors
from collabfilter.errors import ConfigError
from collabfilter.models.dot import compiled
from collabfilter.models.dot.gather import DotSGD, GatherDotSGD
from collabfilter.models.dot.module import DotProductBias
from collabfilter.sgd import RowTrained, Steps, TrainConfig
from collabfilter.sgd.steps import AutogradSteps, StepPlan

Form = Literal["compiled", "gather", "autograd"]

FORMS: dict[str, type[DotSGD[object]]] = {
    "compiled": compiled.CompiledDotSGD,  # type: ignore[dict-item]
    "gather": GatherDotSGD,  # type: ignore[dict-item]
}


def closed_form_applies(config: TrainConfig) -> bool:
    """Whether the closed forms can train with ``config`` exactly (plain per-rating sgd)."""
    return config.optimizer == "sgd" and config.momentum == 0.0 and config.grad_clip is None


def choose_form(
    model: DotProductBias, config: TrainConfig, data: RatingTensors, requested: StepForm
) -> Form:
    """The form that trains ``model``: ``requested``, or by the rule of ``"auto"``.

    Raises:
        ConfigError: for a closed form that cannot train with this config, or a CPU
            form asked for on another device.
    """
    closed = closed_form_applies(config)
    if requested == "auto":
        if not closed:
            return "autograd"
        return "gather" if compiled.unsuitable(model, data) else "compiled"
    if requested != "autograd" and not closed:
        raise ConfigError(
            f"step={requested!r} trains by plain sgd (no momentum, no clipping); this "
            f"config has optimizer={config.optimizer!r}, momentum={config.momentum}, "
            f"grad_clip={config.grad_clip}: use step='autograd' or 'auto'"
        )
    return requested


def dot_steps(
    module: RowTrained,
    data: RatingTensors,
    config: TrainConfig,
    options: RunOptions,
    generator: torch.Generator,
    *,
    shard_of: tuple[RatingTensors, int] | None = None,
) -> Steps:
    """The dot family's steps factory (see :class:`collabfilter.sgd.StepsFactory`)."""
    if not isinstance(module, DotProductBias):
        raise TypeError(f"the dot family trains its own modules, not {type(module).__name__}")
    plan = StepPlan(module.row_tables(), data, config, options, generator, shard_of)
    form = choose_form(module, config, data, options.step)
    if form == "autograd":
        return AutogradSteps(module, data, plan, config)
    return FORMS[form](
        module, data, plan, lr=config.lr, dense_lr=config.dense_lr, betas=config.betas
    )

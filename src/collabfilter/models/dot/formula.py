"""The dot family's formula, written once::

    e_u     = b_u + beta_u * a_u                  a side's effect: bias plus activity prior
    x(u, i) = p_u . q_i + e_u + e_i + c           the logit
    r(u, i) = low + span * sigmoid(x(u, i))       the rating (span 0: no range, r = x)
    g(u, i) = (r(u, i) - rating) * dr/dx          the gradient of half the squared error

Everything that computes it (the module's forward and scores, fold-in, explanations,
and each form of the sgd step) calls the functions below. They are written once, in
terms of a ``sigmoid``, and built for two dialects: torch tensors (:data:`TORCH`, any
device) and numba's compiled scalars (:func:`compiled`, for the compiled step's loop).
The dot product itself is each caller's own (a matrix product, a sampled sparse
product, a loop over factors). The tests check that the dialects agree.
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable
from functools import cache
from typing import Any, NamedTuple

import torch

FASTMATH = {"reassoc", "contract", "nsz", "arcp"}
"""numba's fast-math flags for the compiled dialect: reassociation lets the compiler
vectorise the dot products; the flags that assume no NaN or infinity are left out, so
that a diverging run still shows a non-finite loss."""


def unbound(*args: Any) -> Any:
    """Stands for a function each dialect binds its own of (a template is never run)."""
    raise NotImplementedError("a formula template runs only as one of its dialects")


sigmoid: Callable[[Any], Any] = unbound
"""The dialect's sigmoid: each dialect's copy of the functions below binds its own."""


def _effect(bias: Any, weight: Any, activity: Any) -> Any:
    return bias + weight * activity


def _logit(dot: Any, user_effect: Any, item_effect: Any, offset: Any) -> Any:
    return dot + user_effect + item_effect + offset


def _rating(x: Any, low: float, span: float) -> Any:
    if span == 0.0:
        return x
    return low + span * sigmoid(x)


def _gradient(x: Any, error: Any, span: float) -> Any:
    if span == 0.0:
        return error
    squashed = sigmoid(x)
    return error * span * squashed * (1.0 - squashed)


class Formula(NamedTuple):
    """The formula's functions in one dialect."""

    effect: Callable[..., Any]
    """``effect(bias, weight, activity)``: a side's effect ``b + beta * a``."""
    logit: Callable[..., Any]
    """``logit(dot, user_effect, item_effect, offset)``: ``x``."""
    rating: Callable[..., Any]
    """``rating(x, low, span)``: the rating of a logit."""
    gradient: Callable[..., Any]
    """``gradient(x, error, span)``: d(error^2 / 2)/dx, ``error`` being rating - truth."""


def _build(sigmoid: Callable[[Any], Any], wrap: Callable[[Any], Any] = lambda f: f) -> Formula:
    """The formula with ``sigmoid`` as its sigmoid, each function passed through ``wrap``
    (numba's compiler for the compiled dialect)."""
    namespace = {"sigmoid": sigmoid, "__name__": __name__}

    def build(function: Callable[..., Any]) -> Any:
        return wrap(types.FunctionType(function.__code__, namespace, function.__name__))

    return Formula(build(_effect), build(_logit), build(_rating), build(_gradient))


TORCH = _build(torch.sigmoid)
"""The formula on torch tensors (and Python floats)."""


def logit_of(rating: float, low: float, span: float) -> float:
    """The logit whose rating is ``rating`` (the inverse of ``rating``), kept a little
    inside the range so that it stays finite: where training starts the offset."""
    if span == 0.0:
        return rating
    share = min(max((rating - low) / span, 1e-3), 1 - 1e-3)
    return math.log(share / (1 - share))


def _scalar_sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


@cache
def compiled() -> Formula:
    """The formula compiled by numba for scalars, on first use (numba is imported here,
    so that the package's other entry points do not pay for it)."""
    import numba

    def jit(function: Callable[..., Any]) -> Any:
        return numba.njit(cache=True, fastmath=FASTMATH, inline="always")(function)

    return _build(jit(_scalar_sigmoid), jit)

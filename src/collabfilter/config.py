"""What every configuration shares: run options, the bases of the families' configs,
validation helpers and the round trip through plain dicts (JSON).

Hyper-parameters are kept apart from run options, as in LensKit: a family's
:class:`ModelConfig` (what is built) and :class:`FitConfig` (how it is trained) decide
the result; :class:`RunOptions` (device, threads, seed, progress, step form) only how
it is computed. The families' own configs live beside their code
(``collabfilter.models.dot.DotConfig``, ``collabfilter.sgd.TrainConfig``, ...). Every
config is frozen, validates itself on creation and round-trips through plain dicts for
model files and the CLI.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Literal, TypeVar, get_args

from collabfilter.errors import ConfigError

StepForm = Literal["auto", "compiled", "gather", "autograd"]


class _NotGiven:
    """The type of :data:`NOT_GIVEN`."""

    _instance: _NotGiven | None = None

    def __new__(cls) -> _NotGiven:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NOT_GIVEN"

    def __bool__(self) -> bool:
        return False


NOT_GIVEN: Any = _NotGiven()
"""Default of optional keyword arguments whose ``None`` is a meaningful value: "not
given" leaves a config field as it is, an explicit ``None`` sets it to ``None``."""


def require(condition: bool, message: str) -> None:
    """Raise :class:`ConfigError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(message)


def require_choice(value: str, allowed: Any, name: str) -> None:
    """Raise unless ``value`` is one of the ``Literal`` type ``allowed``."""
    options = get_args(allowed)
    require(value in options, f"{name} must be one of {options}, got {value!r}")


@dataclass(frozen=True)
class ModelConfig:
    """Base of a family's model config: which model is built, and its sizes.

    Subclasses are frozen dataclasses beside their family's code; ``kind`` names the
    family's registry entry (``collabfilter.models.FAMILIES``)."""

    KINDS: ClassVar[tuple[str, ...]] = ()
    """The kinds this config can describe (the registry finds a family by kind)."""

    @property
    def kind(self) -> str:
        """The model kind, as recipes and model files name it."""
        return self.KINDS[0]


@dataclass(frozen=True)
class FitConfig:
    """Base of a family's fit config: how a model of that family is trained."""

    def with_length(self, n: int) -> FitConfig:
        """This config running ``n`` passes over the data (epochs of sgd, sweeps of a
        sampler).

        Raises:
            ConfigError: for fits that make no passes (closed forms).
        """
        raise ConfigError(f"{type(self).__name__} fits in closed form: it has no epochs")


@dataclass(frozen=True)
class RunOptions:
    """How to run, without changing what is learned (beyond floating-point order)."""

    device: str = "auto"
    """``"auto"`` (CUDA, then MPS, then CPU), or a torch device such as ``"cpu"``."""
    threads: int | None = None
    """CPU threads for torch (None: leave torch's setting)."""
    seed: int = 42
    """Seeds initialisation, shuffling and dropout."""
    progress: bool | None = None
    """The epoch table and notes on stderr, and an animated bar where someone watches (a
    terminal, or a notebook with ipywidgets). None shows the table wherever training
    runs; ``False`` here or ``COLLABFILTER_PROGRESS=0`` silences both."""
    step: StepForm = "auto"
    """How a dot model's sgd step is computed: ``"compiled"`` (one compiled, parallel
    loop per batch, numba, CPU), ``"gather"`` (gathers and ``index_add_``, any device),
    ``"autograd"`` (the generic path every model and optimizer takes). ``"auto"``
    chooses by the rules of :mod:`collabfilter.models.dot.steps`; the forms do the same
    arithmetic in another order (the tests check they agree)."""
    shuffle_block: int | None = None
    """Ratings per block of an epoch's order, a power of two: 1 visits the ratings in an
    exact random permutation; larger blocks are faster on millions of ratings (see
    :mod:`collabfilter.sgd.order`). None: 1 below 2^20 ratings, else up to 64."""

    def __post_init__(self) -> None:
        require(
            self.threads is None or self.threads >= 1, f"threads must be >= 1, got {self.threads}"
        )
        require_choice(self.step, StepForm, "step")
        require(
            self.shuffle_block is None
            or (self.shuffle_block >= 1 and self.shuffle_block & (self.shuffle_block - 1) == 0),
            f"shuffle_block must be a power of two (1, 2, 4, ...) or None, "
            f"got {self.shuffle_block}",
        )


C = TypeVar("C")


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (tuples become lists)."""
    return {
        f.name: list(v) if isinstance(v := getattr(config, f.name), tuple) else v
        for f in fields(config)
    }


def config_from_dict(cls: type[C], data: dict[str, Any]) -> C:
    """Rebuild a config from :func:`config_to_dict` output, refusing unknown keys."""
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - known)
    require(not unknown, f"unknown {cls.__name__} field(s) {unknown}; known: {sorted(known)}")
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return cls(**values)


def with_changes(config: C, **changes: Any) -> C:
    """A copy of ``config`` with some fields changed (validated again).

    A change whose value is :data:`NOT_GIVEN` is skipped; ``None`` is a value like any
    other (``early_stopping=None`` turns early stopping off).
    """
    known = {f.name for f in fields(config)}  # type: ignore[arg-type]
    unknown = sorted(set(changes) - known)
    require(
        not unknown, f"unknown {type(config).__name__} field(s) {unknown}; known: {sorted(known)}"
    )
    given = {k: v for k, v in changes.items() if v is not NOT_GIVEN}
    return dataclasses.replace(config, **given)  # type: ignore[type-var]


__all__ = [
    "NOT_GIVEN",
    "FitConfig",
    "ModelConfig",
    "RunOptions",
    "StepForm",
    "config_from_dict",
    "config_to_dict",
    "require",
    "require_choice",
    "with_changes",
]

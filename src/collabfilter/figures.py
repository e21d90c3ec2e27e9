"""Axes to draw on. matplotlib is optional (the ``plots`` extra): every drawing gets its
axes here, and without matplotlib one clear error says what to install."""

from __future__ import annotations

from typing import TYPE_CHECKING

from collabfilter.errors import CollabFilterError

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def require_matplotlib() -> None:
    """Raise :class:`CollabFilterError` naming the extra to install without matplotlib."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise CollabFilterError(
            "plots need matplotlib: pip install 'collabfilter[plots]'"
        ) from error


def axes_or_new(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    """``ax``, or the axes of a new pyplot figure (shown where pyplot shows figures)."""
    if ax is not None:
        return ax
    require_matplotlib()
    import matplotlib.pyplot as plt

    axes: Axes = plt.subplots(figsize=figsize)[1]
    return axes

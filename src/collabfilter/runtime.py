"""Where and how reproducibly torch and numba run: device choice, seeding by run
options, numba's threads, and the one notice of torch's that is silenced."""

from __future__ import annotations

import contextlib
import os
import types
import warnings
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

import torch


def resolve_device(name: str) -> torch.device:
    """``"auto"``: CUDA, then Apple MPS, then CPU; anything else as torch reads it."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@contextlib.contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's global generators for a block (initial weights, dropout masks) and
    give the caller's random state back afterwards."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@cache
def quiet_csr() -> None:
    """torch prints a one-time 'sparse CSR support is in beta' notice on the first CSR
    tensor of a process, whichever call makes it; the operations used here are stable
    and tested, so the first one is made here with the notice silenced."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        torch.sparse_csr_tensor(
            torch.zeros(2, dtype=torch.int64), torch.zeros(0, dtype=torch.int64),
            torch.zeros(0), size=(1, 1), check_invariants=False,
        )  # fmt: skip


@cache
def _numba() -> types.ModuleType:
    """numba, imported on first use (entry points without compiled code do not pay for
    it), its threads from a thread-safe layer (OpenMP or TBB) so that two threads of a
    program may run compiled code at once; ``NUMBA_THREADING_LAYER`` overrides it.

    The layer is set here, before anything can start numba's threads: once they run,
    a later setting is silently ignored."""
    import numba

    if "NUMBA_THREADING_LAYER" not in os.environ:
        numba.config.THREADING_LAYER = "threadsafe"  # type: ignore[attr-defined]
    return numba


def compile_parallel(function: Callable[..., Any], **options: Any) -> Any:
    """``function`` compiled by numba with parallel loops (cached on disk, so later
    processes load it instead of compiling), its global ``prange`` bound to numba's
    (a module writes ``prange = range`` for its templates); ``parallel=False`` for a
    helper without parallel loops beside them."""
    numba = _numba()
    namespace = {**function.__globals__, "prange": numba.prange}
    bound = types.FunctionType(function.__code__, namespace, function.__name__)
    return numba.njit(**{"cache": True, "parallel": True, **options})(bound)


def use_threads() -> None:
    """numba's threads for the calling thread: torch's count (one knob,
    ``torch.set_num_threads``, ``RunOptions.threads`` or ``OMP_NUM_THREADS``), at most
    numba's pool."""
    numba = _numba()
    wanted = torch.get_num_threads()
    pool: int = numba.config.NUMBA_NUM_THREADS
    numba.set_num_threads(max(1, min(wanted, pool)))
    # numba's first call starts its threads, and its OpenMP layer then resets the count
    # of the OpenMP runtime it shares with torch: torch's own setting is put back
    if torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)

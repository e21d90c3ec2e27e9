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
    processes load it instead of compiling), its globals ``prange`` bound to numba's and
    ``fetch_row`` to :func:`row_prefetch`'s (a module writes ``prange = range`` and
    ``fetch_row = unbound`` for its templates); ``parallel=False`` for a helper without
    parallel loops beside them."""
    numba = _numba()
    namespace = {**function.__globals__, "prange": numba.prange, "fetch_row": row_prefetch()}
    bound = types.FunctionType(function.__code__, namespace, function.__name__)
    return numba.njit(**{"cache": True, "parallel": True, **options})(bound)


@cache
def row_prefetch() -> Any:
    """``fetch_row(table, row)`` for compiled loops: asks the CPU to bring every cache
    line of a 2-D table's row in (LLVM's ``llvm.prefetch``, for reading, into every
    cache level) without waiting for it. A loop that gathers rows at random is bound by
    memory latency, not bandwidth: fetching the rows of a rating a few ratings ahead
    overlaps their wait with the work on the current one. A hint only: results do not
    change.

    numba's disk cache keys a compiled loop on its own source file, not on this one: a
    change here reaches loops already cached only once their cache files are removed
    (``__pycache__/*.nbi``, ``*.nbc``), as for the dot formula's dialect."""
    numba = _numba()
    from llvmlite import ir
    from numba.core import cgutils
    from numba.extending import intrinsic

    def generate(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        table_type, row_type, column_type = signature.args
        array = context.make_array(table_type)(context, builder, args[0])
        at = [context.cast(builder, value, kind, numba.intp)
              for value, kind in ((args[1], row_type), (args[2], column_type))]  # fmt: skip
        address = cgutils.get_item_pointer(  # type: ignore[no-untyped-call]
            context, builder, table_type, array, at, wraparound=False
        )
        byte, flag = ir.IntType(8).as_pointer(), ir.IntType(32)
        declared = ir.FunctionType(ir.VoidType(), [byte, flag, flag, flag])
        hint = cgutils.get_or_insert_function(  # type: ignore[no-untyped-call]
            builder.module, declared, "llvm.prefetch.p0"
        )
        # read (0), keep in every cache level (3), data cache (1)
        flags = [ir.Constant(flag, value) for value in (0, 3, 1)]
        builder.call(hint, [builder.bitcast(address, byte), *flags])
        return context.get_dummy_value()

    def typed(typing: Any, table: Any, row: Any, column: Any) -> Any:
        return numba.void(table, row, column), generate

    prefetch: Any = intrinsic(typed)

    @numba.njit(inline="always")  # type: ignore[untyped-decorator]
    def fetch_row(table: Any, row: Any) -> None:
        last = table.shape[1] - 1
        if last < 0:
            return
        for column in range(0, last + 1, max(1, 64 // table.itemsize)):  # a line at a time
            prefetch(table, row, column)
        prefetch(table, row, last)  # a row that does not start on a line ends in one more

    return fetch_row


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

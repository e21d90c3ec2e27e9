"""Shared helpers for the benchmark scripts: machine facts, isolated peak-memory runs."""

from __future__ import annotations

import multiprocessing
import os
import platform
import resource
import time
from collections.abc import Callable
from pathlib import Path
from queue import Empty
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WORK = Path(os.environ.get("COLLABFILTER_BENCH_DIR", ROOT / "benchmarks" / ".work"))
SHARED = ROOT.parent / "shared" / "datasets"


def machine_header(title: str) -> str:
    """One block naming the machine, thread counts and library versions."""
    import numpy
    import pandas
    import pyarrow
    import torch

    import collabfilter

    lines = [
        f"== {title} ==",
        f"machine: {platform.machine()} {platform.processor() or ''}".rstrip()
        + f", {os.cpu_count()} logical cores, torch threads {torch.get_num_threads()}",
        f"python {platform.python_version()}, numpy {numpy.__version__}, pandas "
        f"{pandas.__version__}, pyarrow {pyarrow.__version__}, torch {torch.__version__}, "
        f"collabfilter {collabfilter.__version__}",
        f"speed probe: {speed_probe():.0f} ms (a fixed gather/scatter workload; a virtual "
        "machine's speed drifts by 2x and more within an hour)",
    ]
    return "\n".join(lines)


def speed_probe() -> float:
    """Milliseconds for a fixed gather/scatter workload shaped like one ml-100k fit's
    steps (best of three): how fast the machine ran when the benchmark started."""
    import torch

    generator = torch.Generator().manual_seed(0)
    table = torch.randn(1682, 64, generator=generator)
    rows = torch.randint(0, 1682, (8192,), generator=generator)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(100):
            gathered = table.index_select(0, rows)
            table.index_add_(0, rows, gathered.mul_(-1e-6))
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def _child(fn: Callable[..., Any], args: tuple[Any, ...], queue: Any) -> None:
    start = time.perf_counter()
    result = fn(*args)
    elapsed = time.perf_counter() - start
    peak = peak_rss()
    queue.put((result, elapsed, peak))


def peak_rss() -> int:
    """This process's peak resident memory in bytes (VmHWM resets at exec, unlike
    ru_maxrss, which a spawned child inherits from its parent)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_isolated(fn: Callable[..., Any], *args: Any) -> tuple[Any, float, int]:
    """Run ``fn(*args)`` in a fresh process: (result, seconds, peak RSS bytes).

    A fresh process makes the peak memory the function's own, not the benchmark's.
    """
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_child, args=(fn, args, queue))
    process.start()
    while True:  # a child killed (e.g. out of memory) never answers: do not wait forever
        try:
            result = queue.get(timeout=5)
            break
        except Empty:
            if not process.is_alive():
                raise RuntimeError(
                    f"benchmark child died with exit code {process.exitcode} (killed for memory?)"
                ) from None
    process.join()
    if process.exitcode != 0:
        raise RuntimeError(f"benchmark child failed with exit code {process.exitcode}")
    return result


def gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.2f} GiB"

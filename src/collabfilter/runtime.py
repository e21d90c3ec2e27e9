"""Where and how reproducibly torch runs: device choice, seeding by run options, and
the one notice of torch's that is silenced."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from functools import cache

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

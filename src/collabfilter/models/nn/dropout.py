"""Dropout with a cheaper mask on the CPU (the nn family's)."""

from __future__ import annotations

import sys

import torch
from torch import Tensor, nn

PIECES = 1 << 16


class Dropout(nn.Dropout):
    """``nn.Dropout`` with a cheaper mask on the CPU, from the same torch generator.

    There, eager ``bernoulli_`` is a serial loop (pytorch/pytorch#138199), and ``rand``
    too costs a generator call per element. Here one call yields a random int64 whose
    three low 16-bit pieces (the top piece has its sign bit clear) decide three elements:
    kept when the
    piece reaches a threshold, so with probability ``1 - p`` to within 1/65,536, and
    kept values are scaled by the inverse of that exact probability. Same seed, same
    masks; the state dict is ``nn.Dropout``'s. Other devices use torch's own dropout.
    """

    def forward(self, input: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return input
        if input.device.type != "cpu":
            return super().forward(input)
        if self.p == 1.0:
            return input * 0.0
        dropped = min(round(self.p * PIECES), PIECES - 1)  # of every 65,536 piece values
        keep = _pieces_at_least(input.shape, dropped - PIECES // 2)
        return input * keep.to(input.dtype).mul_(PIECES / (PIECES - dropped))


def _pieces_at_least(shape: torch.Size, threshold: int) -> Tensor:
    """A bool tensor of ``shape``: uniform random int16 values ``>= threshold``."""
    n = shape.numel()
    bits = torch.empty(-(-n // 3), dtype=torch.int64).random_()  # in [0, 2**63)
    pieces = bits.view(torch.int16).view(-1, 4)
    low_three = pieces[:, :3] if sys.byteorder == "little" else pieces[:, 1:]
    return (low_three >= threshold).view(-1)[:n].view(shape)

"""A part of the text cut into equal contiguous streams read side by side (truncated BPTT), so
batch k continues batch k - 1 in every row and the model carries its state between them.

part:      a0 a1 a2 a3 a4 a5 a6 a7 b0 b1 b2 b3 b4 b5 b6 b7 ..   (2 streams of 8, num_steps = 3)
batch 0:   X = a0 a1 a2   Y = a1 a2 a3      one row per stream
batch 1:   X = a3 a4 a5   Y = a4 a5 a6      the state after a2 carries on into a3
batch 2:   X = a6         Y = a7            every character but a stream's first is a target once"""

from __future__ import annotations

import math

import torch
from torch.utils.data import Dataset

from rnnlm.errors import UserError

# A streamed batch: (X, Y, position); position is where X starts in every stream (0: the
# first batch, whose state starts at zero). The model checks that batches arrive in order.
StreamBatch = tuple[torch.Tensor, torch.Tensor, int]


class Streams(Dataset):
    """Tokens [start, stop) as `num_streams` equal streams (the remainder left out); `rows`: this
    process's streams. Item k is batch k, one gather through `lut`, nothing materialised."""

    def __init__(
        self,
        chars: torch.Tensor,
        lut: torch.Tensor,
        start: int,
        stop: int,
        num_streams: int,
        num_steps: int,
        rows: range | None = None,
    ) -> None:
        self.length = (stop - start) // num_streams  # characters in each stream
        if self.length < 2:
            raise UserError(
                f"{stop - start} characters cannot be cut into {num_streams} streams of at "
                "least 2 characters: use fewer streams (data.batch_size, data.eval_streams) "
                "or a longer text"
            )
        rows = range(num_streams) if rows is None else rows
        self.chars, self.lut, self.num_steps = chars, lut, num_steps
        self.starts = start + self.length * torch.tensor(list(rows), dtype=torch.int64)

    @property
    def num_streams(self) -> int:
        return len(self.starts)

    def __len__(self) -> int:
        return math.ceil((self.length - 1) / self.num_steps)

    @property
    def num_targets(self) -> int:
        return self.num_streams * (self.length - 1)

    def __getitem__(self, k: int) -> StreamBatch:
        if not 0 <= k < len(self):
            raise IndexError(k)
        first = k * self.num_steps
        steps = min(self.num_steps, self.length - 1 - first)
        offsets = torch.arange(first, first + steps + 1)
        tokens = self.lut[self.chars[self.starts.unsqueeze(1) + offsets].long()]
        return tokens[:, :-1], tokens[:, 1:], first  # (num_streams, steps) each


def shard(num_streams: int, rank: int, world: int, contiguous: bool) -> range:
    """Process `rank`'s streams: a contiguous block (training), or every world-th one (scoring)."""
    if contiguous:
        per_rank = num_streams // world
        return range(rank * per_rank, (rank + 1) * per_rank)
    return range(rank, num_streams, world)

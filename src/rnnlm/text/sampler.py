"""The book's windows shuffled without holding a permutation of them all (texts of any size), the
same batches on every resume, sharded by rank."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class Shuffle:
    """A pseudo-random permutation of range(n) from `key` for any slice of positions in O(slice)
    memory: a 4-round Feistel network over the bits that cover n, cycle-walking back into range
    (`torch.randperm` would hold 8 GB for a 1 GB corpus)."""

    ROUNDS = 4

    def __init__(self, n: int, key: int) -> None:
        bits = max(2, (n - 1).bit_length())
        self.n, self.half = n, (bits + 1) // 2
        self.mask = (1 << self.half) - 1
        generator = torch.Generator().manual_seed(key)
        self.keys = torch.randint(0, 1 << 30, (self.ROUNDS,), generator=generator).tolist()

    def _round_function(self, right: torch.Tensor, key: int) -> torch.Tensor:
        # A multiply-xorshift hash; every product stays below 2**63 (no int64 overflow).
        h = (right * 0x5BD1E995 + key) & 0xFFFFFFFF
        h = ((h ^ (h >> 15)) * 0x2C1B3C6D) & 0xFFFFFFFF
        return (h ^ (h >> 13)) & self.mask

    def _feistel(self, x: torch.Tensor) -> torch.Tensor:
        left, right = x >> self.half, x & self.mask
        for key in self.keys:
            left, right = right, left ^ self._round_function(right, key)
        return (left << self.half) | right

    def __call__(self, positions: torch.Tensor) -> torch.Tensor:
        x = self._feistel(positions)
        outside = x >= self.n
        while outside.any():
            x[outside] = self._feistel(x[outside])
            outside = x >= self.n
        return x


def rank_and_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class WindowSampler(Sampler[torch.Tensor]):
    """Batches of window indices for this process. Training: a permutation drawn from (seed, epoch)
    only (a resumed run sees the same batches); rank r takes positions r, r + world, ..., padded
    so ranks step together. Validation is not padded: every window counts once."""

    CHUNK = 1 << 18  # positions permuted per vectorised call

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        rank_world: tuple[int, int] | None = None,
    ) -> None:
        self.num_samples, self.batch_size = num_samples, batch_size
        self.shuffle, self.seed, self.epoch = shuffle, seed, 0
        self.rank_world = rank_world  # (rank, world size); default: the process group's

    def rank_and_world(self) -> tuple[int, int]:
        return self.rank_world or rank_and_world()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def samples_of_rank(self) -> int:
        rank, world = self.rank_and_world()
        if self.shuffle:
            return -(-self.num_samples // world)  # padded: the same on every rank
        return len(range(rank, self.num_samples, world))

    def __len__(self) -> int:
        return -(-self.samples_of_rank() // self.batch_size)

    def __iter__(self) -> Iterator[torch.Tensor]:
        rank, world = self.rank_and_world()
        total, n = self.samples_of_rank(), self.num_samples
        shuffle = Shuffle(n, self.seed * 100003 + self.epoch) if self.shuffle else None
        per_chunk = max(1, self.CHUNK // self.batch_size) * self.batch_size
        for first in range(0, total, per_chunk):
            # Positions in the (padded) epoch order that this rank takes, then their windows.
            positions = (rank + world * torch.arange(first, min(first + per_chunk, total))) % n
            indices = shuffle(positions) if shuffle else positions
            yield from indices.split(self.batch_size)

"""The Time Machine as a character corpus: download, preprocessing, `Vocab` and windows.

Follows d2l.ai §9.2 (text into sequences) and §9.3 (language models): the `TimeMachine` data.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from rnnlm.download import DATA_SHA1, DATA_URL, download, read_text
from rnnlm.errors import UserError, require_positive


def preprocess(text: str) -> str:
    """The book's cleaning: every run of non-letters becomes one space, then lowercase."""
    return re.sub("[^A-Za-z]+", " ", text).lower()


def tokenize(text: str) -> list[str]:
    """One token per character."""
    return list(text)


class Vocab:
    """Tokens <-> indices; indices follow the sorted order of the tokens, `<unk>` included."""

    def __init__(
        self, tokens: Iterable[str] = (), min_freq: int = 0, reserved_tokens: Sequence[str] = ()
    ) -> None:
        counter = collections.Counter(tokens)
        self.token_freqs = sorted(counter.items(), key=lambda x: x[1], reverse=True)
        kept = [token for token, freq in self.token_freqs if freq >= min_freq]
        self.idx_to_token = sorted({"<unk>", *reserved_tokens, *kept})
        self.token_to_idx = {token: idx for idx, token in enumerate(self.idx_to_token)}

    @classmethod
    def from_tokens(cls, idx_to_token: Sequence[str]) -> Vocab:
        """Rebuild a vocabulary saved as its list of tokens (e.g. from a checkpoint)."""
        vocab = cls(reserved_tokens=idx_to_token)
        if vocab.idx_to_token != list(idx_to_token):
            raise UserError("a saved vocabulary must be a sorted list of unique tokens")
        return vocab

    def __len__(self) -> int:
        return len(self.idx_to_token)

    def __getitem__(self, tokens: str | Sequence[str]) -> int | list[int]:
        if isinstance(tokens, str):
            return self.token_to_idx.get(tokens, self.unk)
        return [self.token_to_idx.get(token, self.unk) for token in tokens]

    def to_tokens(self, indices: int | Iterable[int]) -> str | list[str]:
        if isinstance(indices, int):
            return self.idx_to_token[indices]
        return [self.idx_to_token[int(i)] for i in indices]

    @property
    def unk(self) -> int:
        return self.token_to_idx["<unk>"]

    def encode(self, text: str) -> torch.Tensor:
        """Indices of the characters of `text`, as one int64 tensor (vectorised for ASCII)."""
        if not text:
            return torch.empty(0, dtype=torch.int64)
        if text.isascii():
            table = torch.full((128,), self.unk, dtype=torch.int64)
            for token, idx in self.token_to_idx.items():
                if len(token) == 1 and ord(token) < 128:
                    table[ord(token)] = idx
            codes = torch.frombuffer(bytearray(text.encode("ascii")), dtype=torch.uint8)
            return table[codes.long()]
        return torch.tensor(self[tokenize(text)], dtype=torch.int64)


class Windows(Dataset):
    """Overlapping windows of `num_steps + 1` tokens, cut from one token tensor on demand.

    corpus:  t0 t1 t2 t3 t4 t5 t6 ...          (num_steps = 3)
    window i=0:  X = t0 t1 t2   Y = t1 t2 t3
    window i=1:     X = t1 t2 t3   Y = t2 t3 t4  (stride 1: windows overlap)
    Window i of this dataset starts at token `start + i`; nothing is materialised.
    """

    def __init__(self, corpus: torch.Tensor, num_steps: int, start: int, count: int) -> None:
        self.corpus, self.num_steps, self.start, self.count = corpus, num_steps, start, count
        self.offsets = torch.arange(num_steps + 1)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        window = self.corpus[self.start + i : self.start + i + self.num_steps + 1]
        return window[:-1], window[1:]

    def __getitems__(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        # A whole batch in one gather: (batch, num_steps + 1) indices into the corpus.
        rows = (torch.as_tensor(indices) + self.start).unsqueeze(1) + self.offsets
        windows = self.corpus[rows]
        return windows[:, :-1], windows[:, 1:]


def keep_batch(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """`collate_fn` for `Windows`: `__getitems__` already returns a stacked batch."""
    return batch


def rank_and_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class WindowSampler(Sampler[int]):
    """Window indices for this process.

    Training (`shuffle=True`): a new permutation every epoch drawn from (seed, epoch) only, so
    a run resumed from a checkpoint sees the same batches as one that never stopped (Lightning
    calls `set_epoch`). Under DDP each rank takes every world_size-th index; training pads
    with a few repeats so all ranks step together, validation does not pad, so every
    validation window is counted exactly once (Lightning's DistributedSampler would repeat
    some: the Trainer runs with use_distributed_sampler=False).
    """

    def __init__(self, num_samples: int, shuffle: bool, seed: int = 0) -> None:
        self.num_samples, self.shuffle, self.seed, self.epoch = num_samples, shuffle, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def indices(self) -> torch.Tensor:
        n = self.num_samples
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
            order = torch.randperm(n, generator=generator)
        else:
            order = torch.arange(n)
        rank, world = rank_and_world()
        if world > 1 and self.shuffle:
            order = torch.cat([order, order[: -n % world or 0]])  # pad to a multiple of world
        return order[rank::world]

    def __len__(self) -> int:
        rank, world = rank_and_world()
        if self.shuffle:
            return -(-self.num_samples // world)  # padded: the same on every rank
        return len(range(rank, self.num_samples, world))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())


class TimeMachine(pl.LightningDataModule):
    """The book's data: the first `num_train` windows train (shuffled), the next `num_val` validate.

    `path=None` downloads d2l's copy into `root` (SHA-1 checked); `path=FILE` reads any book.
    `vocab` (a list of tokens, e.g. a checkpoint's) encodes the text instead of its own.
    """

    def __init__(
        self,
        batch_size: int = 1024,
        num_steps: int = 32,
        num_train: int = 10000,
        num_val: int = 5000,
        root: str = "data",
        path: str | None = None,
        url: str = DATA_URL,
        sha1: str | None = DATA_SHA1,
        vocab: Sequence[str] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        for name in ("batch_size", "num_steps", "num_train", "num_val"):
            value = locals()[name]
            require_positive(f"data.{name}", value)
            if not isinstance(value, int):
                raise UserError(f"data.{name}={value!r} is not allowed: it must be an integer")
        self.save_hyperparameters(ignore=["vocab"])
        self.batch_size, self.num_steps = batch_size, num_steps
        self.num_train, self.num_val = num_train, num_val
        self.root, self.path, self.url, self.sha1, self.seed = root, path, url, sha1, seed
        self.vocab = Vocab.from_tokens(vocab) if vocab is not None else None
        self.corpus: torch.Tensor | None = None
        self.num_unk = 0
        self._text_file: Path | None = None

    def prepare_data(self) -> None:
        if self.path is None:
            download(self.url, self.root, self.sha1)

    def text_file(self) -> Path:
        return (
            Path(self.path) if self.path is not None else download(self.url, self.root, self.sha1)
        )

    def setup(self, stage: str | None = None) -> None:
        if self.corpus is not None:
            return
        text = preprocess(read_text(self.text_file()))
        if not text.strip():
            raise UserError(f"{self.text_file()} contains no letters A-Z: nothing to learn from")
        if self.vocab is None:
            self.vocab = Vocab(tokenize(text))
        self.corpus = self.vocab.encode(text)  # (num_tokens,) int64
        self.num_unk = int((self.corpus == self.vocab.unk).sum())

    def check_sizes(self, needed: int) -> None:
        available = len(self.corpus) - self.num_steps
        if needed > available:
            raise UserError(
                f"data.num_train + data.num_val = {needed} windows, but {self.text_file()} has "
                f"{len(self.corpus)} tokens, i.e. {max(available, 0)} windows of "
                f"data.num_steps + 1 = {self.num_steps + 1}: lower them"
            )

    def split(self, name: str) -> Windows:
        """`train`, `val` (the book's split) or `all` (every window of the text)."""
        if name == "all":
            return Windows(
                self.corpus, self.num_steps, 0, max(len(self.corpus) - self.num_steps, 0)
            )
        self.check_sizes(self.num_train + self.num_val)
        if name == "train":
            return Windows(self.corpus, self.num_steps, 0, self.num_train)
        if name == "val":
            return Windows(self.corpus, self.num_steps, self.num_train, self.num_val)
        raise UserError(f"split={name!r} is not allowed: use train, val or all")

    def loader(self, name: str, shuffle: bool = False) -> DataLoader:
        windows = self.split(name)
        sampler = WindowSampler(len(windows), shuffle, self.seed)
        return DataLoader(windows, self.batch_size, sampler=sampler, collate_fn=keep_batch)

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader("val")

"""The Time Machine as a character corpus: download, preprocessing, `Vocab`, the data module.

Follows d2l.ai §9.2 (text into sequences) and §9.3 (language models): the `TimeMachine` data.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from rnnlm.corpus import Corpus, load_corpus, wants_cache
from rnnlm.download import DATA_SHA1, DATA_URL, download
from rnnlm.errors import UserError
from rnnlm.windows import Windows, WindowSampler, keep_batch, resolve_count


def preprocess(text: str) -> str:
    """The book's cleaning: every run of non-letters becomes one space, then lowercase."""
    return re.sub("[^A-Za-z]+", " ", text).lower()


def tokenize(text: str) -> list[str]:
    """One token per character."""
    return list(text)


class Vocab:
    """Tokens <-> indices; indices follow the sorted order of the tokens, `<unk>` included."""

    def __init__(
        self,
        tokens: Iterable[str] | Mapping[str, int] = (),
        min_freq: int = 0,
        reserved_tokens: Sequence[str] = (),
    ) -> None:
        counter = collections.Counter(tokens)  # a mapping is taken as {token: count}
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

    def byte_table(self) -> torch.Tensor:
        """(256,) byte -> index of that ASCII character (`<unk>` for the rest); uint8 when
        the vocabulary fits in it, so batches cut through it stay one byte per token."""
        dtype = torch.uint8 if len(self) <= 256 else torch.int64
        table = torch.full((256,), self.unk, dtype=dtype)
        for token, idx in self.token_to_idx.items():
            if len(token) == 1 and ord(token) < 128:
                table[ord(token)] = idx
        return table

    def encode(self, text: str) -> torch.Tensor:
        """Indices of the characters of `text`, as one int64 tensor (vectorised for ASCII)."""
        if not text:
            return torch.empty(0, dtype=torch.int64)
        if text.isascii():
            codes = torch.frombuffer(bytearray(text.encode("ascii")), dtype=torch.uint8)
            return self.byte_table()[codes.long()].long()
        return torch.tensor(self[tokenize(text)], dtype=torch.int64)


class TimeMachine(pl.LightningDataModule):
    """The book's data: the first `num_train` windows train (shuffled), the next `num_val` validate.

    `path=None` downloads d2l's copy into `root` (SHA-1 checked); `path=FILE` reads any book.
    `num_train`/`num_val` are counts of windows, or fractions in (0, 1) of the corpus's.
    A text of at least `memmap_min_mb` MB is cleaned once into a cache file next to it (or in
    `root`) and memory-mapped. `vocab` (a list of tokens, e.g. a checkpoint's) encodes the
    text instead of its own. Batches are uint8 (one byte per token to copy to a GPU); the
    model widens them after the transfer.
    """

    def __init__(
        self,
        batch_size: int = 1024,
        num_steps: int = 32,
        num_train: int | float = 10000,
        num_val: int | float = 5000,
        root: str = "data",
        path: str | None = None,
        url: str = DATA_URL,
        sha1: str | None = DATA_SHA1,
        vocab: Sequence[str] | None = None,
        seed: int = 0,
        memmap_min_mb: float = 64,
    ) -> None:
        super().__init__()
        sizes = dict(batch_size=batch_size, num_steps=num_steps)
        for name, value in {**sizes, "num_train": num_train, "num_val": num_val}.items():
            check_count(name, value, fraction_ok=name not in sizes)
        self.save_hyperparameters(ignore=["vocab"])
        self.batch_size, self.num_steps = batch_size, num_steps
        self.num_train, self.num_val = num_train, num_val
        self.root, self.path, self.url, self.sha1, self.seed = root, path, url, sha1, seed
        self.memmap_min_mb = memmap_min_mb
        self.vocab = Vocab.from_tokens(vocab) if vocab is not None else None
        self.corpus: Corpus | None = None
        self.num_unk = 0

    def text_file(self) -> Path:
        return (
            Path(self.path) if self.path is not None else download(self.url, self.root, self.sha1)
        )

    def load(self, text: Path | None = None) -> Corpus:
        text = text or self.text_file()
        folders = (text.parent, Path(self.root))  # next to the text, else the data cache
        return load_corpus(text, folders, self.memmap_min_bytes)

    @property
    def memmap_min_bytes(self) -> int:
        return int(self.memmap_min_mb * 2**20)

    def prepare_data(self) -> None:
        # Rank 0 only: download, and write the memory-mapped cache once for all ranks (a small
        # text is cleaned in `setup`, in memory: nothing to prepare).
        text = self.text_file()
        if self.corpus is None and wants_cache(text, self.memmap_min_bytes):
            self.load(text)

    def setup(self, stage: str | None = None) -> None:
        if self.corpus is not None:
            return
        self.corpus = self.load()
        if self.vocab is None:
            self.vocab = Vocab(self.corpus.counts)
        known = set(self.vocab.idx_to_token)
        self.num_unk = sum(n for c, n in self.corpus.counts.items() if c not in known)
        available = len(self.corpus.chars) - self.num_steps
        self.num_train = resolve_count(self.num_train, available)
        self.num_val = resolve_count(self.num_val, available)

    def check_sizes(self, needed: int) -> None:
        available = len(self.corpus.chars) - self.num_steps
        if needed > available or min(self.num_train, self.num_val) < 1:
            raise UserError(
                f"data.num_train + data.num_val = {self.num_train} + {self.num_val} = {needed} "
                f"windows, but {self.text_file()} has {len(self.corpus.chars)} tokens, i.e. "
                f"{max(available, 0)} windows of data.num_steps + 1 = {self.num_steps + 1}: "
                "each must be at least 1 and together at most that"
            )

    def split(self, name: str) -> Windows:
        """`train`, `val` (the book's split) or `all` (every window of the text)."""
        chars, lut = self.corpus.chars, self.vocab.byte_table()
        if name == "all":
            count = max(len(chars) - self.num_steps, 0)
            return Windows(chars, lut, self.num_steps, 0, count)
        self.check_sizes(self.num_train + self.num_val)
        if name == "train":
            return Windows(chars, lut, self.num_steps, 0, self.num_train)
        if name == "val":
            return Windows(chars, lut, self.num_steps, self.num_train, self.num_val)
        raise UserError(f"split={name!r} is not allowed: use train, val or all")

    def loader(self, name: str, shuffle: bool = False) -> DataLoader:
        windows = self.split(name)
        sampler = WindowSampler(len(windows), self.batch_size, shuffle, self.seed)
        on_gpu = self.trainer is not None and self.trainer.strategy.root_device.type == "cuda"
        return DataLoader(
            windows, batch_size=None, sampler=sampler, collate_fn=keep_batch, pin_memory=on_gpu
        )

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader("val")


def check_count(name: str, value, fraction_ok: bool = False) -> None:
    """Sizes are integers >= 1; `num_train`/`num_val` may also be fractions in (0, 1)."""
    if fraction_ok and isinstance(value, float) and 0 < value < 1:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        allowed = "an integer >= 1"
        if fraction_ok:
            allowed += " (windows) or a fraction of the corpus between 0 and 1"
        raise UserError(f"data.{name}={value!r} is not allowed: it must be {allowed}")

"""The Time Machine as a character corpus: download, preprocessing, `Vocab` and windows.

Follows d2l.ai §9.2 (text into sequences) and §9.3 (language models): the `TimeMachine` data.
"""

from __future__ import annotations

import collections
import hashlib
import os
import re
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from rnnlm.errors import UserError, require_positive

DATA_URL = "http://d2l-data.s3-accelerate.amazonaws.com/timemachine.txt"
DATA_SHA1 = "090b5e7e70c295757f55df93cb0a180b9691891a"


def sha1sum(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, root: str | Path, sha1: str | None) -> Path:
    """Fetch `url` into `root` once; a cached file is reused only if its SHA-1 matches.

    The bytes go to a temporary file that is renamed only after the checksum passed, so an
    interrupted or corrupt download never becomes the cache.
    """
    root = Path(root)
    target = root / url.rstrip("/").split("/")[-1]
    if target.is_file() and (sha1 is None or sha1sum(target) == sha1):
        return target
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"data.root={str(root)!r} cannot be created: {err.strerror}") from None
    fd, tmp = tempfile.mkstemp(dir=root, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            while chunk := response.read(1 << 20):
                out.write(chunk)
        got = sha1sum(Path(tmp))
        if sha1 is not None and got != sha1:
            raise UserError(
                f"downloaded {url} has SHA-1 {got}, expected {sha1}; the file was discarded"
            )
        os.replace(tmp, target)
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", None) or err
        raise UserError(
            f"cannot download {url} ({reason}); offline? pass data.path=FILE to use a local copy"
        ) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def read_text(path: str | Path) -> str:
    """Read a UTF-8 text file, with one-line errors for missing, binary or non-UTF-8 files."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"data.path={str(path)!r} does not exist or is not a file")
    raw = path.read_bytes()
    if b"\x00" in raw:
        raise UserError(f"data.path={str(path)!r} is a binary file; a UTF-8 text file is needed")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UserError(
            f"data.path={str(path)!r} is not UTF-8 text (byte {err.start}); convert it to UTF-8"
        ) from None


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


class TimeMachine(pl.LightningDataModule):
    """The book's data: the first `num_train` windows train (shuffled), the next `num_val` validate.

    `path=None` downloads d2l's copy into `root` (SHA-1 checked); `path=FILE` reads any book.
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
    ) -> None:
        super().__init__()
        for name in ("batch_size", "num_steps", "num_train", "num_val"):
            value = locals()[name]
            require_positive(f"data.{name}", value)
            if not isinstance(value, int):
                raise UserError(f"data.{name}={value!r} is not allowed: it must be an integer")
        self.batch_size, self.num_steps = batch_size, num_steps
        self.num_train, self.num_val = num_train, num_val
        self.root, self.path, self.url, self.sha1 = root, path, url, sha1
        self.vocab: Vocab | None = None
        self.corpus: torch.Tensor | None = None

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
        self.vocab = Vocab(tokenize(text))
        self.corpus = self.vocab.encode(text)  # (num_tokens,) int64
        available = len(self.corpus) - self.num_steps
        if self.num_train + self.num_val > available:
            raise UserError(
                f"data.num_train + data.num_val = {self.num_train + self.num_val} windows, but "
                f"{self.text_file()} has {len(self.corpus)} tokens, i.e. {max(available, 0)} "
                f"windows of data.num_steps + 1 = {self.num_steps + 1}: lower them"
            )

    def split(self, train: bool) -> Windows:
        start, count = (0, self.num_train) if train else (self.num_train, self.num_val)
        return Windows(self.corpus, self.num_steps, start, count)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.split(True), self.batch_size, shuffle=True, collate_fn=keep_batch)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.split(False), self.batch_size, shuffle=False, collate_fn=keep_batch)

"""The book's data (d2l.ai §9.2-9.3): d2l's download of The Time Machine (SHA-1 checked), its
overlapping windows, and `TimeMachine`, the book's split into train and validation windows.

corpus:  t0 t1 t2 t3 t4 t5 t6 ...          (num_steps = 3)
window i=0:  X = t0 t1 t2   Y = t1 t2 t3
window i=1:     X = t1 t2 t3   Y = t2 t3 t4  (stride 1: windows overlap)"""

from __future__ import annotations

import hashlib
import math
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from rnnlm.errors import UserError, require_count, require_windows
from rnnlm.files import write_file
from rnnlm.vocab import BOOK_ALPHABET, Vocab, preprocess

DATA_URL = "http://d2l-data.s3-accelerate.amazonaws.com/timemachine.txt"
DATA_SHA1 = "090b5e7e70c295757f55df93cb0a180b9691891a"


def sha1sum(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, root: str | Path, sha1: str | None) -> Path:
    """Fetch `url` into `root` once (a cached file only if its SHA-1 matches), written whole
    once the checksum passed."""
    root = Path(root)
    target = root / url.rstrip("/").split("/")[-1]
    if target.is_file() and sha1 is None:
        return target
    found = sha1sum(target) if target.is_file() else None
    if found == sha1:
        return target
    try:
        response = urllib.request.urlopen(url, timeout=60)
        root.mkdir(parents=True, exist_ok=True)  # only once there is something to keep
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", None) or err
        if found is not None:
            raise UserError(
                f"{target} has SHA-1 {found}, not {sha1} (cut short, or with other line ends), "
                f"and no new copy can be downloaded ({reason}): copy d2l's timemachine.txt "
                "there again, or pass data.path=FILE"
            ) from None
        raise UserError(
            f"cannot download {url} ({reason}); offline? copy the book to {target} (its SHA-1 "
            "is checked) or pass data.path=FILE to use a local copy"
        ) from None
    digest = hashlib.sha1()

    def fetch(out) -> None:
        while chunk := response.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
        if sha1 is not None and digest.hexdigest() != sha1:
            raise UserError(
                f"downloaded {url} has SHA-1 {digest.hexdigest()}, expected {sha1}; the file "
                "was discarded"
            )

    with response:
        write_file(target, fetch)
    return target


BYTE_CHARS = tuple(chr(b) for b in range(256))  # the book's characters by their byte value


@dataclass
class Text:
    """A text as token codes: code c stands for `symbols[c]`."""

    chars: torch.Tensor  # (num_tokens,) codes
    symbols: tuple[str, ...]  # code -> token


class Windows(Dataset):
    """Window i starts at token `start + i`, nothing materialised: `chars` are codes (maybe
    memory-mapped), `lut` maps a code to its vocabulary index; a tensor of indices is a batch in
    one gather."""

    def __init__(
        self, chars: torch.Tensor, lut: torch.Tensor, num_steps: int, start: int, count: int
    ) -> None:
        self.chars, self.lut, self.num_steps = chars, lut, num_steps
        self.start, self.count = start, count
        self.offsets = torch.arange(num_steps + 1)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rows = (torch.as_tensor(index) + self.start).unsqueeze(-1) + self.offsets
        windows = self.lut[self.chars[rows].long()]  # (..., num_steps + 1) token indices
        return windows[..., :-1], windows[..., 1:]


def keep_batch(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """`collate_fn` for `Windows`: a tensor index already gives a stacked batch."""
    return batch


class TimeMachine(pl.LightningDataModule):
    """The book's data: the first `num_train` windows of `num_steps + 1` characters train
    (shuffled), the next `num_val` validate (counts, or fractions of the text's). `path=None`
    downloads d2l's copy; `vocab` (a checkpoint's tokens) encodes the text instead of its own."""

    def __init__(
        self,
        batch_size: int = 1024,
        num_steps: int = 32,
        num_train: int | float = 10000,
        num_val: int | float = 5000,
        root: str = "data",
        path: str | None = None,
        url: str | None = None,
        sha1: str | None = None,
        vocab: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        require_count("data.batch_size", batch_size)
        require_count("data.num_steps", num_steps)
        require_windows("data.num_train", num_train)
        require_windows("data.num_val", num_val)
        self.save_hyperparameters(ignore=["vocab"])
        self.batch_size, self.num_steps = batch_size, num_steps
        self.num_train, self.num_val = num_train, num_val
        # null: d2l's copy and its checksum
        self.url, self.sha1 = url or DATA_URL, sha1 or DATA_SHA1
        self.root, self.path = root, path
        self.vocab = Vocab.from_tokens(vocab) if vocab is not None else None
        self.corpus: Text | None = None
        self.lut = None  # code -> vocabulary index

    def text_file(self) -> Path:
        return (
            Path(self.path) if self.path is not None else download(self.url, self.root, self.sha1)
        )

    def load(self) -> Text:
        """The book's preprocessing of the text; its characters coded by their byte value."""
        try:
            text = preprocess(self.text_file().read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as err:
            raise UserError(f"data.path={str(self.text_file())!r} cannot be read: {err}") from None
        return Text(torch.frombuffer(bytearray(text.encode()), dtype=torch.uint8), BYTE_CHARS)

    def setup(self, stage: str | None = None) -> None:
        """Read the text once; for `fit`, check that every part holds what reads it."""
        if self.corpus is None:
            self.corpus = self.load()
            self.resolve_counts(len(self.corpus.chars) - self.num_steps)
            if self.vocab is None:
                self.vocab = self.train_vocabulary()
            self.lut = self.vocab.lookup(self.corpus.symbols)
        if stage == "fit":
            self.check_sizes()

    def resolve_counts(self, available: int) -> None:
        """Fractions in (0, 1) of the `available` windows as counts."""
        counts = (self.num_train, self.num_val)
        resolved = (math.floor(c * available) if isinstance(c, float) else c for c in counts)
        self.num_train, self.num_val = resolved

    def train_vocabulary(self) -> Vocab:
        """The book's characters: the letters, the space, and `<unk>`."""
        return Vocab(reserved_tokens=tuple(BOOK_ALPHABET))

    def parts(self) -> dict[str, tuple[int, int]]:
        """The character ranges of train, val and test (train and val windows share num_steps):
        |train: [0, num_train + num_steps)|
                  |val: [num_train, num_train + num_val + num_steps)|test: the rest|"""
        n = len(self.corpus.chars)
        train_end = self.num_train + self.num_steps
        val_end = min(self.num_train + self.num_val + self.num_steps, n)
        return {"train": (0, train_end), "val": (self.num_train, val_end), "test": (val_end, n)}

    def check_sizes(self) -> None:
        """The windows asked for fit the text; else one line naming the settings."""
        n = len(self.corpus.chars)
        needed, available = self.num_train + self.num_val, n - self.num_steps
        if needed > available or min(self.num_train, self.num_val) < 1:
            raise UserError(
                f"data.num_train + data.num_val = {self.num_train} + {self.num_val} = "
                f"{needed} windows, but {self.text_file()} has {n} tokens, i.e. "
                f"{max(available, 0)} windows of data.num_steps + 1 = {self.num_steps + 1}: "
                "each must be at least 1 and together at most that (fractions of the text "
                "fit any length: data.num_train=0.8 data.num_val=0.1)"
            )

    def examples(self, name: str, training: bool = False) -> Windows:
        start, stop = self.parts()[name]
        return Windows(
            self.corpus.chars, self.lut, self.num_steps, start, stop - start - self.num_steps
        )

    def loader(self, name: str, training: bool = False) -> DataLoader:
        """Batches of part `name`'s windows, shuffled for training (d2l's `get_dataloader`)."""
        windows = self.examples(name, training)
        order = RandomSampler(windows) if training else SequentialSampler(windows)
        batches = BatchSampler(order, self.batch_size, drop_last=False)
        return DataLoader(windows, sampler=batches, batch_size=None, collate_fn=keep_batch)

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", training=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader("val")

    def model_inputs(self) -> dict:
        """The vocabulary, which the model sizes its core from."""
        return {"vocab": self.vocab.idx_to_token}

    def has_test(self) -> bool:
        return False

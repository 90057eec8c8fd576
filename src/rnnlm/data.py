"""The Time Machine as a character corpus: the data module (download, parts, loaders).

Follows d2l.ai §9.2 (text into sequences) and §9.3 (language models): the `TimeMachine` data.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_only
from torch.utils.data import DataLoader, SequentialSampler

from rnnlm.corpus import Corpus, load_corpus, wants_cache
from rnnlm.download import DATA_SHA1, DATA_URL, download
from rnnlm.errors import UserError, check_count, check_fractions, require_choice
from rnnlm.streams import Streams, shard
from rnnlm.text import TextFormat
from rnnlm.vocab import Vocab
from rnnlm.windows import Windows, WindowSampler, keep_batch, rank_and_world, resolve_count

SPLITS = ("book", "contiguous")
SAMPLINGS = ("windows", "sequential")
PARTS = ("train", "val", "test")
MAX_VOCAB = 65535  # word vocabularies: indices fit in 16 bits
COUNT_CHUNK = 1 << 22  # tokens counted at a time (a memory-mapped text never sits in memory)


@rank_zero_only
def say(line: str) -> None:
    print(line)


class TimeMachine(pl.LightningDataModule):
    """The book's data, or the whole book in three contiguous parts.

    `split="book"` (d2l's): the first `num_train` windows train (shuffled), the next `num_val`
    validate, and the test part is all the text after the last validation window.
    `split="contiguous"`: the text is cut into train, val and test parts by `fractions`.
    `sampling="windows"` (d2l's) trains on shuffled overlapping windows, each from a zero state;
    `sampling="sequential"` cuts the train part into `batch_size` contiguous streams whose
    state the model carries from batch to batch (`rnnlm.streams`). The test part (and the
    validation part with `sequential`) is scored as `eval_streams` streams, each character
    once, with the state carried through its stream.

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
        url: str | None = None,
        sha1: str | None = None,
        vocab: Sequence[str] | None = None,
        seed: int = 0,
        memmap_min_mb: float = 64,
        split: str = "book",
        fractions: Sequence[float] = (0.8, 0.1, 0.1),
        sampling: str = "windows",
        eval_streams: int = 10,
        preprocess: str = "book",
        token: str = "char",
        min_freq: int = 1,
    ) -> None:
        super().__init__()
        sizes = dict(batch_size=batch_size, num_steps=num_steps, eval_streams=eval_streams)
        for name, value in {**sizes, "num_train": num_train, "num_val": num_val}.items():
            check_count(name, value, fraction_ok=name not in sizes)
        require_choice("data.split", split, SPLITS)
        require_choice("data.sampling", sampling, SAMPLINGS)
        fractions = check_fractions(fractions)
        self.format = TextFormat(preprocess, token)
        if not isinstance(min_freq, int) or isinstance(min_freq, bool) or min_freq < 1:
            raise UserError(
                f"data.min_freq={min_freq!r} is not allowed: a whole number >= 1 (tokens of the "
                "train part seen fewer times become <unk>)"
            )
        self.min_freq = min_freq
        self.save_hyperparameters(ignore=["vocab"])
        self.hparams.fractions = fractions  # plain floats in the checkpoint
        self.batch_size, self.num_steps = batch_size, num_steps
        self.num_train, self.num_val = num_train, num_val
        self.split, self.fractions, self.sampling = split, fractions, sampling
        self.eval_streams = eval_streams
        # null: d2l's copy and its checksum (their one home: rnnlm.download)
        self.url, self.sha1 = url or DATA_URL, sha1 or DATA_SHA1
        self.root, self.path, self.seed = root, path, seed
        self.memmap_min_mb = memmap_min_mb
        self.vocab = Vocab.from_tokens(vocab) if vocab is not None else None
        self.corpus: Corpus | None = None
        self.lut = None  # code -> vocabulary index
        self.per_token: dict[str, float | None] = {}  # characters_per_token by part
        self.num_unk = 0

    def text_file(self) -> Path:
        return (
            Path(self.path) if self.path is not None else download(self.url, self.root, self.sha1)
        )

    def load(self, text: Path | None = None) -> Corpus:
        text = text or self.text_file()
        folders = (text.parent, Path(self.root))  # next to the text, else the data cache
        return load_corpus(text, folders, self.memmap_min_bytes, self.format)

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
        """Read the text once; for `fit`, check that every part holds what reads it."""
        if self.corpus is None:
            self.corpus = self.load()
            available = len(self.corpus.chars) - self.num_steps
            self.fit_counts(available)
            self.num_train = resolve_count(self.num_train, available)
            self.num_val = resolve_count(self.num_val, available)
            if self.vocab is None:
                self.vocab = self.train_vocabulary()
            self.lut = self.vocab.lookup(self.corpus.symbols)
            known = set(self.vocab.idx_to_token)
            self.num_unk = sum(n for c, n in self.corpus.counts.items() if c not in known)
        if stage == "fit":
            self.check_sizes()

    def counts(self, start: int, stop: int) -> dict[str, int]:
        """How often each token occurs in tokens [start, stop) of the text."""
        found = torch.zeros(len(self.corpus.symbols), dtype=torch.int64)
        for first in range(start, stop, COUNT_CHUNK):
            part = self.corpus.chars[first : min(first + COUNT_CHUNK, stop)].long()
            found += part.bincount(minlength=len(found))
        symbols = self.corpus.symbols
        return {symbols[c]: n for c, n in enumerate(found.tolist()) if n}

    def train_vocabulary(self) -> Vocab:
        """The vocabulary of the train part (d2l's `Vocab(tokens, min_freq)`): no token of the
        validation or test parts enters it. The book's characters and bytes have a fixed one."""
        start, stop = self.parts()["train"]
        counts = self.counts(start, min(stop, len(self.corpus.chars)))
        if len(counts) < 2:
            raise UserError(
                f"the train part of {self.text_file()} has {len(counts)} distinct "
                f"{self.format.token}s ({self.format}): at least 2 are needed to learn anything"
            )
        fixed = self.format.fixed_alphabet
        if fixed is not None:
            return Vocab(reserved_tokens=fixed, unk=self.format.token != "byte")
        vocab = Vocab(counts, self.min_freq)
        if len(vocab) > MAX_VOCAB:
            freqs = sorted(counts.values(), reverse=True)
            fits = freqs[MAX_VOCAB - 1] + 1  # keeps at most MAX_VOCAB - 1 tokens and <unk>
            raise UserError(
                f"data.min_freq={self.min_freq} keeps {len(vocab)} {self.format.token}s of the "
                f"train part, more than {MAX_VOCAB}: data.min_freq={fits} keeps "
                f"{sum(f >= fits for f in freqs) + 1}"
            )
        return vocab

    def unknown(self) -> dict[str, int]:
        """Tokens of each part outside the vocabulary (read as <unk>)."""
        known = set(self.vocab.idx_to_token)
        n = len(self.corpus.chars)
        found = {}
        for name, (start, stop) in self.parts().items():
            counts = self.counts(min(start, n), min(stop, n))
            found[name] = sum(c for token, c in counts.items() if token not in known)
        return found

    def characters_per_token(self, name: str) -> float | None:
        """Characters of the text per token scored in part `name` (what its loader reads,
        every process's share): a word model's or a byte model's bits per token times this
        is its bits per character. None for characters (1) and parts with nothing to read."""
        if self.format.token == "char":
            return None
        if name not in self.per_token:  # the same every epoch: counted once
            self.per_token[name] = self.count_characters_per_token(name)
        return self.per_token[name]

    def count_characters_per_token(self, name: str) -> float | None:
        weights = torch.tensor([self.format.characters(s) for s in self.corpus.symbols])
        try:
            examples = self.examples(name, training=False)
        except UserError:
            return None
        chars = self.corpus.chars
        if isinstance(examples, Streams):
            starts = examples.starts.tolist()
            spans = [(s + 1, s + examples.length, None) for s in starts]
            tokens = examples.num_targets
        else:  # window i's targets: start + i + 1 .. start + i + num_steps
            count, steps = len(examples), examples.num_steps
            spans = [(examples.start + 1, examples.start + count + steps, (count, steps))]
            tokens = count * steps
        total = 0
        for first, stop, windows in spans:
            for a in range(first, stop, COUNT_CHUNK):
                b = min(a + COUNT_CHUNK, stop)
                part = weights[chars[a:b].long()]
                if windows is not None:  # position j is a target of this many windows
                    count, steps = windows
                    j = torch.arange(a - first + 1, b - first + 1)
                    upper = torch.clamp(j - 1, max=count - 1)
                    part = part * (upper - torch.clamp(j - steps, min=0) + 1)
                total += int(part.sum())
        return tokens / total if total and tokens else None

    def parts(self) -> dict[str, tuple[int, int]]:
        """The character ranges [start, stop) of train, val and test.

        book:        |train: [0, num_train + num_steps)|
                                 |val: [num_train, num_train + num_val + num_steps)|test: rest|
                     (the book's train and val windows share num_steps characters)
        contiguous:  |train: fractions[0]|val: fractions[1]|test: fractions[2]|  (no overlap)
        """
        n = len(self.corpus.chars)
        if self.split == "contiguous":
            train_end = round(self.fractions[0] * n)
            val_end = train_end + round(self.fractions[1] * n)
            return {"train": (0, train_end), "val": (train_end, val_end), "test": (val_end, n)}
        train_end = self.num_train + self.num_steps
        val_end = min(self.num_train + self.num_val + self.num_steps, n)
        return {"train": (0, train_end), "val": (self.num_train, val_end), "test": (val_end, n)}

    def model_inputs(self) -> dict:
        """What the language model is built with from the data: the vocabulary (the model
        sets its core's input size from it) and how the text was read (`rnnlm.text`)."""
        return {"text": self.format.as_dict(), "vocab": self.vocab.idx_to_token}

    # What window counts that do not fit a text of one's own become.
    FALLBACK = (0.8, 0.1)

    def fit_counts(self, available: int) -> None:
        """With `data.path` (a text of one's own), counts of windows that do not fit it (the
        book's 10,000 + 5,000 on a short text) become `FALLBACK`'s fractions, said in a line."""
        counts = (self.num_train, self.num_val)
        if self.path is None or self.split != "book" or isinstance(self.num_train, float):
            return
        if isinstance(self.num_val, float) or sum(counts) <= available or available < 3:
            return
        self.num_train, self.num_val = self.FALLBACK
        say(
            f"data.num_train={counts[0]} + data.num_val={counts[1]} windows do not fit the "
            f"{max(available, 0)} windows of {self.text_file()}: training on "
            f"data.num_train={self.num_train} data.num_val={self.num_val} of them instead"
        )

    def batch_shape(self) -> tuple[int, int]:
        """(rows, time steps) of a training batch."""
        return self.batch_size, self.num_steps

    def check_sizes(self) -> None:
        """Each part holds what reads it; else one line naming the setting to change."""
        n = len(self.corpus.chars)
        if self.split == "book":
            needed, available = self.num_train + self.num_val, n - self.num_steps
            if needed > available or min(self.num_train, self.num_val) < 1:
                raise UserError(
                    f"data.num_train + data.num_val = {self.num_train} + {self.num_val} = "
                    f"{needed} windows, but {self.text_file()} has {n} tokens, i.e. "
                    f"{max(available, 0)} windows of data.num_steps + 1 = {self.num_steps + 1}: "
                    "each must be at least 1 and together at most that (fractions of the text "
                    "fit any length: data.num_train=0.8 data.num_val=0.1)"
                )
        smallest = self.batch_size * (self.num_steps + 1)
        for name, (start, stop) in self.parts().items():
            streamed_train = name == "train" and self.sampling == "sequential"
            if stop - start < smallest and (self.split == "contiguous" or streamed_train):
                setting = (
                    f"data.fractions={list(self.fractions)}"
                    if self.split == "contiguous"
                    else f"data.num_train={self.num_train}"
                )
                raise UserError(
                    f"{setting} leaves the {name} part {stop - start} of the {n} "
                    f"{self.format.token_name}s of "
                    f"{self.text_file()}, fewer than data.batch_size * (data.num_steps + 1) = "
                    f"{self.batch_size} * {self.num_steps + 1} = {smallest}: give it more "
                    "text, or lower data.batch_size or data.num_steps"
                )

    def examples(
        self, name: str, training: bool = False, rank: int = 0, world: int = 1
    ) -> Windows | Streams:
        """What a loader of part `name` reads in process `rank` of `world`: `train`, `val`,
        `test` or `all` (every window of the text). Training batches are windows or
        `batch_size` streams per process (`sampling`); scoring reads windows of `val`/`train`
        with `sampling=windows`, else `eval_streams` streams, and always for `test`."""
        chars, lut = self.corpus.chars, self.lut
        if name == "all":
            count = max(len(chars) - self.num_steps, 0)
            return Windows(chars, lut, self.num_steps, 0, count)
        if name not in PARTS:
            raise UserError(f"split={name!r} is not allowed: use train, val, test or all")
        self.check_sizes()
        start, stop = self.parts()[name]
        if training and self.sampling == "sequential":
            total = self.batch_size * world  # data.batch_size streams in every process
            rows = shard(total, rank, world, contiguous=True)
            return Streams(chars, lut, start, stop, total, self.num_steps, rows)
        if name == "test" or self.sampling == "sequential":
            if not self.streamable(start, stop) or self.eval_streams < world:
                raise UserError(
                    f"the {name} part has {stop - start} characters of {self.text_file()}: "
                    f"too few for data.eval_streams={self.eval_streams} streams of at least 2 "
                    f"(and {world} processes need at least {world} streams)"
                )
            rows = shard(self.eval_streams, rank, world, contiguous=False)
            return Streams(chars, lut, start, stop, self.eval_streams, self.num_steps, rows)
        return Windows(chars, lut, self.num_steps, start, stop - start - self.num_steps)

    def streams(self, name: str, num_steps: int, num_streams: int | None = None) -> Streams:
        """Part `name` (train, val, test, or all of the text) as `num_streams` streams
        (default `eval_streams`) read `num_steps` characters at a time, state carried."""
        start, stop = (0, len(self.corpus.chars)) if name == "all" else self.parts()[name]
        streams = num_streams or self.eval_streams
        return Streams(self.corpus.chars, self.lut, start, stop, streams, num_steps)

    def has_test(self) -> bool:
        """Whether text is left for a test figure (the book's split on a short text may use
        it all)."""
        return self.streamable(*self.parts()["test"])

    def streamable(self, start: int, stop: int) -> bool:
        """Whether characters [start, stop) make `eval_streams` streams of at least 2."""
        return stop - start >= 2 * self.eval_streams

    def loader(self, name: str, training: bool = False, whole: bool = False) -> DataLoader:
        """Batches of part `name` for this process; `whole`: all of it, also under DDP (for
        scoring outside the Trainer)."""
        rank, world = (0, 1) if whole else rank_and_world()
        examples = self.examples(name, training, rank, world)
        if isinstance(examples, Streams):  # in order: batch k continues batch k - 1
            sampler = SequentialSampler(examples)
        else:
            sampler = WindowSampler(
                len(examples), self.batch_size, training, self.seed, (rank, world)
            )
        on_gpu = self.trainer is not None and self.trainer.strategy.root_device.type == "cuda"
        return DataLoader(
            examples, batch_size=None, sampler=sampler, collate_fn=keep_batch, pin_memory=on_gpu
        )

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", training=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader("val")

    def test_dataloader(self) -> DataLoader:
        return self.loader("test")

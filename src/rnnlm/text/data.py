"""Any text as the model reads it: `TextData` is the book's `TimeMachine` with the text's own
format (`rnnlm.vocab.TextFormat`) at any size, three contiguous parts, streams and a test part."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pytorch_lightning.utilities import rank_zero_only
from torch.utils.data import DataLoader, SequentialSampler

from rnnlm.data import TimeMachine, Windows, keep_batch
from rnnlm.errors import UserError, require_choice, require_count
from rnnlm.text.cache import load_corpus, wants_cache
from rnnlm.text.corpus import Corpus
from rnnlm.text.counts import (
    characters_per_token,
    check_fractions,
    token_counts,
    unknown_tokens,
    vocabulary,
)
from rnnlm.text.sampler import WindowSampler, rank_and_world
from rnnlm.text.streams import Streams, shard
from rnnlm.vocab import TextFormat, Vocab

SPLITS = ("book", "contiguous")
SAMPLINGS = ("windows", "sequential")
PARTS = ("train", "val", "test")
TRAIN_ON = ("train", "train+val")  # train+val: refit on both with a recipe chosen on val
SCORED = (*PARTS, "all", "windows")  # all: the whole text as streams; windows: as windows


say = rank_zero_only(print)


class TextData(TimeMachine):
    """The book's data with a test part: `split="book"`, the text after the validation windows;
    `split="contiguous"`, the last of three parts cut by `fractions` (`train_on="train+val"`: a
    refit). `sampling="sequential"`: `batch_size` streams train, state carried; test (and val) are
    `eval_streams` streams. A text of `memmap_min_mb` MB or more is memory-mapped."""

    def __init__(
        self,
        memmap_min_mb: float = 64,
        split: str = "book",
        fractions: Sequence[float] = (0.8, 0.1, 0.1),
        sampling: str = "windows",
        eval_streams: int = 10,
        preprocess: str = "book",
        token: str = "char",
        min_freq: int = 1,
        train_on: str = "train",
        seed: int = 0,
        **book,
    ) -> None:
        super().__init__(**book)  # the arguments of TimeMachine
        self.seed = seed  # the windows' shuffle: a permutation of (seed, epoch)
        require_count("data.eval_streams", eval_streams)
        require_choice("data.split", split, SPLITS)
        require_choice("data.sampling", sampling, SAMPLINGS)
        self.train_on = require_choice("data.train_on", train_on, TRAIN_ON)
        if train_on != "train" and split != "contiguous":
            raise UserError(f"data.train_on={train_on} needs data.split=contiguous (three parts)")
        self.fractions = check_fractions(fractions)
        self.hparams.fractions = self.fractions  # plain floats in the checkpoint
        self.format = TextFormat(preprocess, token)
        require_count("data.min_freq", min_freq)  # rarer tokens of the train part: <unk>
        self.min_freq, self.split, self.sampling = min_freq, split, sampling
        self.eval_streams, self.memmap_min_bytes = eval_streams, int(memmap_min_mb * 2**20)
        self.per_token: dict[str, float | None] = {}  # characters_per_token by part
        self.num_unk = 0

    def load(self, text: Path | None = None) -> Corpus:
        text = text or self.text_file()
        folders = (text.parent, Path(self.root))  # next to the text, else the data cache
        return load_corpus(text, folders, self.memmap_min_bytes, self.format)

    def prepare_data(self) -> None:
        # Rank 0 only: download, and write the memory-mapped cache once for all ranks (a small
        # text is cleaned in `setup`, in memory: nothing to prepare).
        text = self.text_file()
        if self.corpus is None and wants_cache(text, self.memmap_min_bytes):
            self.load(text)

    def setup(self, stage: str | None = None) -> None:
        fresh = self.corpus is None
        super().setup(stage)
        if fresh:
            known = set(self.vocab.idx_to_token)
            self.num_unk = sum(n for c, n in self.corpus.counts.items() if c not in known)

    def resolve_counts(self, available: int) -> None:
        """With `data.path`, the book's window counts (the defaults) that do not fit the text
        become 0.8 and 0.1; counts a user typed are checked as they are."""
        counts = (self.num_train, self.num_val)
        defaults = counts == (10000, 5000)
        if self.path is not None and self.split == "book" and defaults and 3 <= available < 15000:
            self.num_train, self.num_val = 0.8, 0.1
            say(
                f"data.num_train={counts[0]} + data.num_val={counts[1]} windows do not fit the "
                f"{available} windows of {self.text_file()}: training on "
                f"data.num_train={self.num_train} data.num_val={self.num_val} of them instead"
            )
        super().resolve_counts(available)

    def train_vocabulary(self) -> Vocab:
        """The vocabulary of the train part only (d2l's `Vocab(tokens, min_freq)`)."""
        start, stop = self.parts()["train"]
        counts = token_counts(self.corpus, start, min(stop, len(self.corpus.chars)))
        return vocabulary(counts, self.format, self.min_freq, self.text_file())

    def unknown(self) -> dict[str, int]:
        """Tokens of each part outside the vocabulary (read as <unk>)."""
        return unknown_tokens(self.corpus, self.vocab, self.parts())

    def characters_per_token(self, name: str) -> float | None:
        """Characters of the text per token scored in part `name` (every process's share): a word or
        byte model's bits per token times this is bits per character. None for characters."""
        if self.format.token == "char":
            return None
        if name not in self.per_token:  # the same every epoch: counted once
            try:
                examples = self.examples(name, training=False)
            except UserError:  # a part too short to read: nothing scored
                self.per_token[name] = None
            else:
                self.per_token[name] = characters_per_token(self.corpus, self.format, examples)
        return self.per_token[name]

    def parts(self) -> dict[str, tuple[int, int]]:
        """The book's parts, or with `split=contiguous`: |train: fractions[0]|val|test|."""
        if self.split != "contiguous":
            return super().parts()
        n = len(self.corpus.chars)
        train_end = round(self.fractions[0] * n)
        val_end = train_end + round(self.fractions[1] * n)
        fit_end = val_end if self.train_on == "train+val" else train_end
        return {"train": (0, fit_end), "val": (train_end, val_end), "test": (val_end, n)}

    def model_inputs(self) -> dict:
        """The vocabulary (the model sizes its core from it) and how the text was read."""
        return {"text": self.format.as_dict(), "vocab": self.vocab.idx_to_token}

    def check_sizes(self) -> None:
        """Each part holds what reads it; else one line naming the setting to change."""
        n = len(self.corpus.chars)
        if self.split == "book":
            super().check_sizes()
        smallest = self.batch_size * (self.num_steps + 1)
        for name, (start, stop) in self.parts().items():
            streamed_train = name == "train" and self.sampling == "sequential"
            if stop - start < smallest and (self.split == "contiguous" or streamed_train):
                if self.split == "contiguous":
                    setting = f"data.fractions={list(self.fractions)}"
                else:
                    setting = f"data.num_train={self.num_train}"
                raise UserError(
                    f"{setting} leaves the {name} part {stop - start} of the {n} "
                    f"{self.format.token_name}s of {self.text_file()}, fewer than "
                    "data.batch_size * (data.num_steps + 1) = "
                    f"{self.batch_size} * {self.num_steps + 1} = {smallest}: give it more "
                    "text, or lower data.batch_size or data.num_steps"
                )

    def examples(
        self, name: str, training: bool = False, rank: int = 0, world: int = 1
    ) -> Windows | Streams:
        """What part `name` (train, val, test; all; windows: every window) is in process `rank`
        of `world`: windows or `batch_size` streams a process to train; `eval_streams` streams to
        score."""
        chars, lut = self.corpus.chars, self.lut
        if name == "windows":
            return Windows(chars, lut, self.num_steps, 0, max(len(chars) - self.num_steps, 0))
        if name not in SCORED:
            raise UserError(f"split={name!r} is not allowed: use one of {list(SCORED)}")
        if name != "all":
            self.check_sizes()
        start, stop = (0, len(chars)) if name == "all" else self.parts()[name]
        if training and self.sampling == "sequential":
            total = self.batch_size * world  # data.batch_size streams in every process
            rows = shard(total, rank, world, contiguous=True)
            return Streams(chars, lut, start, stop, total, self.num_steps, rows)
        if name in ("test", "all") or self.sampling == "sequential":
            if not self.streamable(start, stop) or self.eval_streams < world:
                what = "the text" if name == "all" else f"the {name} part"
                ranks = f" (and {world} processes need at least {world})" if world > 1 else ""
                raise UserError(
                    f"{what} has {stop - start} characters of {self.text_file()}: too few for "
                    f"data.eval_streams={self.eval_streams} streams of at least 2{ranks}: give "
                    "more text, or a lower data.eval_streams"
                )
            rows = shard(self.eval_streams, rank, world, contiguous=False)
            return Streams(chars, lut, start, stop, self.eval_streams, self.num_steps, rows)
        return super().examples(name)

    def streams(self, name: str, num_steps: int, num_streams: int | None = None) -> Streams:
        """Part `name` (or `all`) as `num_streams` (default `eval_streams`) streams of
        `num_steps`."""
        start, stop = (0, len(self.corpus.chars)) if name == "all" else self.parts()[name]
        streams = num_streams or self.eval_streams
        return Streams(self.corpus.chars, self.lut, start, stop, streams, num_steps)

    def has_test(self) -> bool:
        """Whether text is left for a test figure (the book's split of a short text may use it
        all)."""
        return self.streamable(*self.parts()["test"])

    def streamable(self, start: int, stop: int) -> bool:
        return stop - start >= 2 * self.eval_streams

    def loader(self, name: str, training: bool = False, whole: bool = False) -> DataLoader:
        """Batches of part `name` for this process; `whole`: all of it, also under DDP."""
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

    def test_dataloader(self) -> DataLoader:
        return self.loader("test")

"""The book's preprocessing, tokens and `Vocab` (d2l.ai §9.2); a model keeps its vocabulary and
`TextFormat`, so generation and evaluation read text the way training did.

preprocess  book: every run of non-letters -> one space, lowercase | none: the text as it is
token       char (d2l's `tokenize(lines, 'char')`) | byte (256 tokens, no <unk>) | word"""

from __future__ import annotations

import codecs
import collections
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

import torch

from rnnlm.errors import UserError, require_choice


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
        unk: bool = True,
    ) -> None:
        counter = collections.Counter(tokens)  # a mapping is taken as {token: count}
        self.token_freqs = sorted(counter.items(), key=lambda x: x[1], reverse=True)
        kept = [token for token, freq in self.token_freqs if freq >= min_freq]
        # Beyond the book: unk=False for a vocabulary that holds every possible token (bytes).
        self.idx_to_token = sorted({*(["<unk>"] if unk else []), *reserved_tokens, *kept})
        self.token_to_idx = {token: idx for idx, token in enumerate(self.idx_to_token)}

    @classmethod
    def from_tokens(cls, idx_to_token: Sequence[str]) -> Vocab:
        """Rebuild a vocabulary saved as its list of tokens (e.g. from a checkpoint)."""
        vocab = cls(reserved_tokens=idx_to_token, unk="<unk>" in idx_to_token)
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
    def unk(self) -> int | None:
        """The index of `<unk>` (None in a vocabulary without one)."""
        return self.token_to_idx.get("<unk>")

    def lookup(self, symbols: Sequence[str]) -> torch.Tensor:
        """Code -> index of `symbols[code]` (`<unk>` for the rest), uint8 when it fits."""
        dtype = torch.uint8 if len(self) <= 256 else torch.int32
        unk = self.unk if self.unk is not None else 0
        return torch.tensor([self.token_to_idx.get(s, unk) for s in symbols], dtype=dtype)


PREPROCESS = ("book", "none")
TOKENS = ("char", "byte", "word")
BYTE_TOKENS = tuple(f"<0x{b:02x}>" for b in range(256))  # byte b is token b (sorted order)
BYTE_INDEX = {token: b for b, token in enumerate(BYTE_TOKENS)}
BOOK_ALPHABET = " abcdefghijklmnopqrstuvwxyz"  # all that the book's cleaning leaves


@dataclass(frozen=True)
class TextFormat:
    """`preprocess` and `token` (see the module's docstring), checked when made."""

    preprocess: str = "book"
    token: str = "char"

    def __post_init__(self) -> None:
        require_choice("data.preprocess", self.preprocess, PREPROCESS)
        require_choice("data.token", self.token, TOKENS)

    @classmethod
    def of(cls, settings: Mapping | None) -> TextFormat:
        """From a checkpoint's or a config's mapping (absent: the book's characters)."""
        settings = dict(settings or {})
        return cls(settings.get("preprocess", "book"), settings.get("token", "char"))

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    def __str__(self) -> str:
        return f"data.preprocess={self.preprocess} data.token={self.token}"

    def clean(self, text: str) -> str:
        """`text` preprocessed as this format reads files."""
        if self.preprocess == "book":
            return preprocess(text)
        return text if self.token == "byte" else text.replace("\r\n", "\n").replace("\r", "\n")

    def split(self, text: str) -> list[str]:
        """The tokens of an already cleaned `text`."""
        if self.token == "byte":
            return [BYTE_TOKENS[b] for b in text.encode("utf-8")]
        return text.split() if self.token == "word" else list(text)

    @property
    def token_name(self) -> str:
        """The kind of token in words: character, byte, word."""
        return "character" if self.token == "char" else self.token

    def joiner(self) -> Joiner:
        return Joiner(self.token)


class Joiner:
    """Tokens back into text a piece at a time: words spaced, bytes decoded as UTF-8 across
    pieces."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def __call__(self, tokens: Iterable[str], final: bool = False) -> str:
        if self.token == "word":
            return "".join(" " + word for word in tokens)
        if self.token == "byte":
            data = bytes(BYTE_INDEX.get(t, 0x3F) for t in tokens)
            return self.decoder.decode(data, final=final)
        return "".join(tokens)


def prefix_indices(prefix: str, fmt: TextFormat, vocab: Vocab) -> list[int]:
    """A prefix's vocabulary indices; one line naming the tokens the vocabulary lacks."""
    tokens, kind = fmt.split(prefix), fmt.token_name
    if not tokens:
        raise UserError(f"prefix={prefix!r} holds no {kind}: give at least one")
    unknown = sorted({t for t in tokens if t not in vocab.token_to_idx})
    if unknown:
        shown = ", ".join(repr(t) for t in unknown[:10]) + (" ..." if len(unknown) > 10 else "")
        raise UserError(
            f"prefix={prefix!r} has {len(unknown)} {kind}{'s' if len(unknown) > 1 else ''} the "
            f"checkpoint's vocabulary does not hold ({shown}): give a prefix of known {kind}s"
        )
    return vocab[tokens]

"""The book's text preprocessing and `Vocab` (d2l.ai §9.2): what the data and the models share.

The models keep their vocabulary as a list of tokens (a checkpoint is self-contained) and never
import a data module; the data modules build the vocabulary from the text.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Iterable, Mapping, Sequence

import torch

from rnnlm.errors import UserError


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
        """(len(symbols),) code -> index of `symbols[code]` (`<unk>` for the rest): what a
        corpus's codes are read through. uint8 when the vocabulary fits in it, so batches cut
        through it stay one byte per token."""
        dtype = torch.uint8 if len(self) <= 256 else torch.int32
        unk = self.unk if self.unk is not None else 0
        return torch.tensor([self.token_to_idx.get(s, unk) for s in symbols], dtype=dtype)

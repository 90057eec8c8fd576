"""Counts over a text of any size: tokens, characters per scored token (a word or byte model's
bits per character), and the fractions that cut a text in three."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rnnlm.data import Text, Windows
from rnnlm.errors import UserError
from rnnlm.text.streams import Streams
from rnnlm.vocab import BOOK_ALPHABET, BYTE_INDEX, BYTE_TOKENS, TextFormat, Vocab

COUNT_CHUNK = 1 << 22  # tokens weighed at a time
MAX_VOCAB = 65535  # word vocabularies: indices fit in 16 bits


def token_counts(corpus: Text, start: int, stop: int) -> dict[str, int]:
    """How often each token occurs in tokens [start, stop) of the text."""
    # torch counts uint8 and int32 codes as they are (no int64 copy of a memory-mapped text).
    found = corpus.chars[start:stop].bincount(minlength=len(corpus.symbols))
    return {corpus.symbols[c]: n for c, n in enumerate(found.tolist()) if n}


def characters(fmt: TextFormat, token: str) -> int:
    """Characters `token` stands for: a word and its space; a byte that starts a character, 1."""
    if fmt.token == "word":
        return len(token) + 1
    if fmt.token == "byte":
        return 0 if 0x80 <= BYTE_INDEX[token] < 0xC0 else 1
    return 1


def characters_per_token(corpus: Text, fmt: TextFormat, examples: Windows | Streams):
    """Characters per token that `examples` score (each target once per window or stream)."""
    weights = torch.tensor([characters(fmt, s) for s in corpus.symbols])
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
        for a in range(first, stop, COUNT_CHUNK):  # int64 copies of a chunk, not of the text
            b = min(a + COUNT_CHUNK, stop)
            part = weights[corpus.chars[a:b].long()]
            if windows is not None:  # position j is a target of this many windows
                count, steps = windows
                j = torch.arange(a - first + 1, b - first + 1)
                upper = torch.clamp(j - 1, max=count - 1)
                part = part * (upper - torch.clamp(j - steps, min=0) + 1)
            total += int(part.sum())
    return tokens / total if total and tokens else None


def vocabulary(counts: dict[str, int], fmt: TextFormat, min_freq: int, text) -> Vocab:
    """The vocabulary of the train part's `counts` (fixed for the book's characters and bytes)."""
    if len(counts) < 2:
        raise UserError(
            f"the train part of {text} has {len(counts)} distinct {fmt.token}s ({fmt}): at "
            "least 2 are needed to learn anything"
        )
    if fmt.token == "byte":  # every text is made of these: a fixed vocabulary
        return Vocab(reserved_tokens=BYTE_TOKENS, unk=False)
    if fmt == TextFormat():
        return Vocab(reserved_tokens=tuple(BOOK_ALPHABET))
    vocab = Vocab(counts, min_freq)
    if len(vocab) > MAX_VOCAB:
        freqs = sorted(counts.values(), reverse=True)
        fits = freqs[MAX_VOCAB - 1] + 1  # keeps at most MAX_VOCAB - 1 tokens and <unk>
        raise UserError(
            f"data.min_freq={min_freq} keeps {len(vocab)} {fmt.token}s of the train part, more "
            f"than {MAX_VOCAB}: data.min_freq={fits} keeps {sum(f >= fits for f in freqs) + 1}"
        )
    return vocab


def unknown_tokens(corpus: Text, vocab: Vocab, parts: dict[str, tuple[int, int]]) -> dict:
    """Tokens of each part outside `vocab` (read as <unk>)."""
    known, n = set(vocab.idx_to_token), len(corpus.chars)
    found = {}
    for name, (start, stop) in parts.items():
        counts = token_counts(corpus, min(start, n), min(stop, n))
        found[name] = sum(c for token, c in counts.items() if token not in known)
    return found


def check_fractions(fractions: Sequence[float]) -> list[float]:
    try:
        values = [float(f) for f in fractions]
    except (TypeError, ValueError):
        values = []
    if len(values) != 3 or min(values) <= 0 or abs(sum(values) - 1) > 1e-6:
        shown = list(fractions) if isinstance(fractions, Sequence) else fractions
        raise UserError(
            f"data.fractions={shown!r} is not allowed: give three fractions > 0 for the train, "
            "val and test parts that sum to 1, e.g. [0.8,0.1,0.1]"
        )
    return values

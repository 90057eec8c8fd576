"""How a text becomes tokens: its preprocessing and its kind of token (`data.preprocess`,
`data.token`), one setting that the data module reads a file with and that every checkpoint
carries, so that generation and evaluation treat new text the way training did.

preprocess  book: d2l.ai §9.2's cleaning (every run of non-letters -> one space, lowercase)
            none: the text as it is (UTF-8; line endings "\\r\\n" and "\\r" become "\\n")
                  (with token=byte: any bytes, exactly as they are)
token       char: one token per character (d2l's `tokenize(lines, 'char')`)
            byte: one token per UTF-8 byte: a fixed vocabulary of 256, no unknown token
            word: one token per word, split at whitespace (d2l's `tokenize(lines, 'word')`)
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

from rnnlm.errors import UserError, require_choice
from rnnlm.vocab import preprocess as preprocess_book

PREPROCESS = ("book", "none")
TOKENS = ("char", "byte", "word")
BYTE_TOKENS = tuple(f"<0x{b:02x}>" for b in range(256))  # byte b is token b (sorted order)
BYTE_INDEX = {token: b for b, token in enumerate(BYTE_TOKENS)}
BOOK_ALPHABET = " abcdefghijklmnopqrstuvwxyz"  # all that the book's cleaning leaves


def normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


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

    @property
    def fixed_alphabet(self) -> tuple[str, ...] | None:
        """The tokens every text of this format is made of, when known before reading it."""
        if self.token == "byte":
            return BYTE_TOKENS
        if self.token == "char" and self.preprocess == "book":
            return tuple(BOOK_ALPHABET)
        return None

    def clean(self, text: str) -> str:
        """`text` preprocessed as this format reads files."""
        if self.preprocess == "book":
            return preprocess_book(text)
        return text if self.token == "byte" else normalise_newlines(text)

    def split(self, text: str) -> list[str]:
        """The tokens of an already cleaned `text`."""
        if self.token == "byte":
            return [BYTE_TOKENS[b] for b in text.encode("utf-8")]
        return text.split() if self.token == "word" else list(text)

    def characters(self, token: str) -> int:
        """Characters of the text that `token` stands for, for bits per character: a word and
        the space before it; a byte that starts a UTF-8 character (or is ASCII) counts 1."""
        if self.token == "word":
            return len(token) + 1
        if self.token == "byte":
            return 0 if 0x80 <= BYTE_INDEX[token] < 0xC0 else 1
        return 1

    @property
    def token_name(self) -> str:
        """The kind of token in words: character, byte, word."""
        return "character" if self.token == "char" else self.token

    def joiner(self) -> Joiner:
        return Joiner(self.token)


class Joiner:
    """Tokens back into text, a piece at a time (to print a long output as it is made):
    characters as they are, words with a space before each, bytes decoded as UTF-8 (a
    character split across two pieces is completed by the next one)."""

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


def refuse_unknown(prefix: str, tokens: list[str], known: Iterable[str], kind: str) -> None:
    """One line naming the tokens of a prefix that the vocabulary does not hold."""
    known = set(known)
    unknown = sorted({t for t in tokens if t not in known})
    if unknown:
        shown = ", ".join(repr(t) for t in unknown[:10]) + (" ..." if len(unknown) > 10 else "")
        raise UserError(
            f"prefix={prefix!r} has {len(unknown)} {kind}{'s' if len(unknown) > 1 else ''} the "
            f"checkpoint's vocabulary does not hold ({shown}): give a prefix of known {kind}s"
        )

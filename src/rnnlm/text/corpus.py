"""A text file into token codes at any size, 16 MB at a time, through the one tokeniser
(`TextFormat.clean` and `.split`): the book's characters and bytes coded by their byte value,
other tokens in the order they first appear."""

from __future__ import annotations

import codecs
import hashlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rnnlm.data import BYTE_CHARS, Text
from rnnlm.errors import UserError
from rnnlm.vocab import BYTE_TOKENS, TextFormat

CHUNK_BYTES = 1 << 24
BOOK = TextFormat()
RAW_BYTES = TextFormat("none", "byte")  # read as bytes, not as text


@dataclass
class Corpus(Text):
    """The book's `Text` (maybe memory-mapped), with what reading told."""

    counts: dict[str, int] = field(default_factory=dict)  # each token's count in the whole text
    sha1: str = ""  # of the file's bytes
    cache: Path | None = None  # the memory-mapped file, if any


def refuse_binary(path: Path, raw: bytes, done: int) -> None:
    """A NUL byte: a binary file, or UTF-16 text (its first two bytes tell), in one line."""
    if done == 0 and raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise UserError(
            f"data.path={str(path)!r} is UTF-16 text (its first bytes say so); convert it to "
            "UTF-8 (iconv -f utf-16 -t utf-8)"
        )
    if b"\x00" in raw:
        raise UserError(
            f"data.path={str(path)!r} is a binary file (a NUL byte at {done + raw.index(0)}); a "
            "UTF-8 text file is needed"
        )


def pieces(path: Path, digest, text: bool = True) -> Iterator[bytes | str]:
    """The file's bytes a chunk at a time, decoded (`text`) or as they are (`digest` sees them);
    one line for a missing, empty, binary or non-UTF-8 file."""
    if not path.is_file():
        raise UserError(f"data.path={str(path)!r} does not exist or is not a file")
    decoder, done = codecs.getincrementaldecoder("utf-8")(), 0
    with open(path, "rb") as f:
        while raw := f.read(CHUNK_BYTES):
            digest.update(raw)
            if text:
                refuse_binary(path, raw, done)
            yield decode(path, decoder, raw, done) if text else raw
            done += len(raw)
    if done == 0:
        raise UserError(f"data.path={str(path)!r} is empty; a UTF-8 text file is needed")
    if text:
        decode(path, decoder, b"", done)


def decode(path: Path, decoder, raw: bytes, done: int) -> str:
    """The text of `raw` (b"": the end of the file), or one line naming the first bad byte."""
    pending = len(decoder.getstate()[0])
    try:
        return decoder.decode(raw, final=not raw)
    except UnicodeDecodeError as err:
        where = f"byte {done + err.start - pending}" if raw else "it ends inside a character"
        raise UserError(
            f"data.path={str(path)!r} is not UTF-8 text ({where}); convert it to UTF-8"
        ) from None


class Coder:
    """`fmt`'s tokens of one piece of text after another -> codes. A piece is cleaned alone, so
    what may go on in the next waits for it (a word's start, a "\\r"), and a run of non-letters
    across two pieces stays one space (the book's cleaning)."""

    def __init__(self, fmt: TextFormat) -> None:
        self.fmt, self.index, self.tail, self.space = fmt, {}, "", False
        self.by_byte = fmt.token == "byte" or fmt == BOOK

    def __call__(self, piece: str | bytes | None) -> np.ndarray:
        """The codes of `piece` (None: the end of the text)."""
        if isinstance(piece, bytes) or (piece is None and self.fmt == RAW_BYTES):
            return np.frombuffer(piece or b"", np.uint8)  # bytes as they are
        text = self.tail + (piece or "")
        keep = len(text)
        if piece is not None and self.fmt.token == "word" and text and not text[-1].isspace():
            keep -= len(text.rsplit(None, 1)[-1])  # the last word, read from the end
        elif piece is not None and text.endswith("\r"):  # maybe "\r\n"
            keep -= 1
        text, self.tail = self.fmt.clean(text[:keep]), text[keep:]
        if self.fmt.preprocess == "book":
            text = text[1:] if self.space and text.startswith(" ") else text
            self.space = text.endswith(" ") if text else self.space
        if self.by_byte:
            return np.frombuffer(text.encode(), np.uint8)
        if self.fmt.token == "word":
            words = self.fmt.split(text)
            return np.asarray([self.index.setdefault(w, len(self.index)) for w in words], np.int32)
        points = np.frombuffer(text.encode("utf-32-le"), np.uint32)  # the characters, vectorised
        found, inverse = np.unique(points, return_inverse=True)
        codes = [self.index.setdefault(chr(p), len(self.index)) for p in found.tolist()]
        return np.asarray(codes, np.int32)[inverse]

    def symbols(self) -> tuple[str, ...]:
        if self.by_byte:
            return BYTE_TOKENS if self.fmt.token == "byte" else BYTE_CHARS
        return tuple(self.index)


def encode_file(path: Path, out, fmt: TextFormat = BOOK) -> tuple[dict[str, int], str, tuple]:
    """Stream `path` through `fmt` into `out` (`code_dtype` codes). Returns the token counts, the
    file's SHA-1 and the symbols."""
    digest, coder = hashlib.sha1(), Coder(fmt)
    counts = np.zeros(0, dtype=np.int64)
    for piece in itertools.chain(pieces(path, digest, text=fmt != RAW_BYTES), [None]):
        codes = coder(piece)
        found = np.bincount(codes, minlength=len(counts))
        found[: len(counts)] += counts
        counts = found
        out.write(codes.astype(code_dtype(fmt), copy=False).tobytes())
    symbols = coder.symbols()
    found = {symbols[c]: int(n) for c, n in enumerate(counts.tolist()) if n}
    if fmt == BOOK and set(found) <= {" "}:
        raise UserError(f"{path} contains no letters A-Z: nothing to learn from")
    if not found:
        raise UserError(f"{path} has no {fmt.token}s ({fmt}): nothing to learn from")
    return found, digest.hexdigest(), symbols


def code_dtype(fmt: TextFormat) -> np.dtype:
    """The type `encode_file` writes: uint8 for the book's characters and bytes, else int32."""
    return np.dtype(np.uint8 if fmt.token == "byte" or fmt == BOOK else np.int32)

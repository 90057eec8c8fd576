"""A text file into token codes, vectorised, at any size. The book's cleaning runs on bytes, 16 MB
at a time: UTF-8 codes every non-ASCII character as bytes >= 0x80, non-letters like it, so the
result is the book's cleaned string. Other formats code tokens by their sorted order."""

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
SPACE = ord(" ")
# Every byte -> its lowercase letter, or a space for anything that is not A-Z / a-z.
CLEAN_TABLE = bytes(
    b | 0x20 if chr(b).isascii() and chr(b).isalpha() else SPACE for b in range(256)
)
BOOK = TextFormat()


@dataclass
class Corpus(Text):
    """The book's `Text` as `code_dtype` codes in the order the symbols first appear (maybe
    memory-mapped), and what reading told."""

    counts: dict[str, int] = field(default_factory=dict)  # each token's count in the whole text
    sha1: str = ""  # of the file's bytes
    cache: Path | None = None  # the memory-mapped file, if any


def clean_chunk(raw: bytes, after_space: bool) -> tuple[np.ndarray, bool]:
    """The book's cleaning of one chunk; `after_space`: the last chunk ended in a space."""
    mapped = np.frombuffer(raw.translate(CLEAN_TABLE), dtype=np.uint8)
    space = mapped == SPACE
    keep = np.empty(len(mapped), dtype=bool)
    keep[0] = not (space[0] and after_space)
    np.logical_not(space[1:] & space[:-1], out=keep[1:])  # drop a space that follows a space
    return mapped[keep], bool(space[-1])


def refuse_binary(path: Path, raw: bytes, done: int) -> None:
    """A NUL byte: a binary file, or UTF-16 text (its first two bytes tell), in one line."""
    if b"\x00" not in raw:
        return
    if done == 0 and raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise UserError(
            f"data.path={str(path)!r} is UTF-16 text (its first bytes say so); convert it to "
            "UTF-8 (iconv -f utf-16 -t utf-8)"
        )
    raise UserError(
        f"data.path={str(path)!r} is a binary file (a NUL byte at {done + raw.index(0)}); a "
        "UTF-8 text file is needed"
    )


def chunks(path: Path, text: bool = True) -> Iterator[bytes]:
    """The file's bytes, 16 MB at a time; one line for a missing, empty, binary or non-UTF-8
    file."""
    if not path.is_file():
        raise UserError(f"data.path={str(path)!r} does not exist or is not a file")
    decoder = codecs.getincrementaldecoder("utf-8")()
    done = 0
    with open(path, "rb") as f:
        while raw := f.read(CHUNK_BYTES):
            if not text:
                done += len(raw)
                yield raw
                continue
            refuse_binary(path, raw, done)
            pending = len(decoder.getstate()[0])
            try:
                decoder.decode(raw)  # validates only; the cleaning works on the bytes
            except UnicodeDecodeError as err:
                raise UserError(
                    f"data.path={str(path)!r} is not UTF-8 text (byte {done + err.start - pending})"
                    "; convert it to UTF-8"
                ) from None
            done += len(raw)
            yield raw
    if done == 0:
        raise UserError(f"data.path={str(path)!r} is empty; a UTF-8 text file is needed")
    if not text:
        return
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise UserError(
            f"data.path={str(path)!r} is not UTF-8 text (it ends inside a character); "
            "convert it to UTF-8"
        ) from None


def prepared(path: Path, fmt: TextFormat, digest) -> Iterator[bytes]:
    """The bytes after `fmt`'s preprocessing, a chunk at a time (`digest` sees the raw bytes): the
    book's cleaning, or line endings made "\\n" (a "\\r" ending a chunk waits for the next)."""
    after_space, pending = False, b""
    as_read = fmt.token == "byte" and fmt.preprocess == "none"  # any bytes, kept exactly
    for raw in chunks(path, text=not as_read):
        digest.update(raw)
        if as_read:
            yield raw
            continue
        if fmt.preprocess == "book":
            cleaned, after_space = clean_chunk(raw, after_space)
            yield cleaned.tobytes()
            continue
        data, pending = pending + raw, b""
        if data.endswith(b"\r"):
            data, pending = data[:-1], b"\r"
        yield data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if pending:
        yield b"\n"


class Coder:
    """Characters or words -> codes in the order they first appear."""

    def __init__(self, token: str) -> None:
        self.token, self.index, self.carry = token, {}, ""
        self.decoder = codecs.getincrementaldecoder("utf-8")()

    def __call__(self, data: bytes, final: bool = False) -> np.ndarray:
        text = self.decoder.decode(data, final=final)
        index = self.index
        if self.token == "char":
            points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
            found, inverse = np.unique(points, return_inverse=True)
            codes = [index.setdefault(chr(p), len(index)) for p in found.tolist()]
            return np.asarray(codes, dtype=np.int32)[inverse]
        # Words: one that runs to the end of the chunk may go on in the next.
        text = self.carry + text
        words = text.split()
        self.carry = words.pop() if words and not final and not text[-1].isspace() else ""
        return np.asarray([index.setdefault(w, len(index)) for w in words], dtype=np.int32)

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self.index)


def encode_file(path: Path, out, fmt: TextFormat = BOOK) -> tuple[dict[str, int], str, tuple]:
    """Stream `path` through `fmt` into `out`: uint8 codes for the book's characters and bytes,
    int32 first-appearance codes otherwise. Returns the token counts, the file's SHA-1 and the
    symbols."""
    digest = hashlib.sha1()
    byte_coded = fmt.token == "byte" or fmt == BOOK
    coder = None if byte_coded else Coder(fmt.token)
    counts = np.zeros(256, dtype=np.int64)
    pieces = prepared(path, fmt, digest)
    for data in pieces if byte_coded else itertools.chain(pieces, [None]):  # None: the end
        codes = np.frombuffer(data, np.uint8) if byte_coded else coder(data or b"", data is None)
        found = np.bincount(codes, minlength=len(counts))
        if len(found) > len(counts):
            counts = np.concatenate([counts, np.zeros(len(found) - len(counts), np.int64)])
        counts[: len(found)] += found
        out.write(codes.tobytes())
    symbols = (BYTE_TOKENS if fmt.token == "byte" else BYTE_CHARS) if byte_coded else coder.symbols
    found = {symbols[c]: int(n) for c, n in enumerate(counts.tolist()) if n}
    if fmt == BOOK and set(found) <= {" "}:
        raise UserError(f"{path} contains no letters A-Z: nothing to learn from")
    if not found:
        raise UserError(f"{path} has no {fmt.token}s ({fmt}): nothing to learn from")
    return found, digest.hexdigest(), symbols


def code_dtype(fmt: TextFormat) -> np.dtype:
    """The type `encode_file` writes: uint8 for the book's characters and bytes, else int32."""
    return np.dtype(np.uint8 if fmt.token == "byte" or fmt == BOOK else np.int32)

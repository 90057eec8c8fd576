"""Reading a text file into the book's character stream, vectorised and at any size.

Follows d2l.ai §9.2 (`_preprocess`, `_tokenize`): every run of non-letters becomes one space,
letters are lowercased, one token per character. Here that runs on bytes, 16 MB at a time:
UTF-8 encodes every non-ASCII character as bytes >= 0x80, which are non-letters just like the
character they stand for, so cleaning bytes gives exactly the book's cleaned string.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rnnlm.download import sha1sum
from rnnlm.errors import UserError

CHUNK_BYTES = 1 << 24
SPACE = ord(" ")
# Every byte -> its lowercase letter, or a space for anything that is not A-Z / a-z.
_TABLE = bytearray([SPACE]) * 256
for _c in range(ord("a"), ord("z") + 1):
    _TABLE[_c] = _TABLE[_c - 32] = _c
CLEAN_TABLE = bytes(_TABLE)


@dataclass
class Corpus:
    """The cleaned text: one uint8 character code per token (in memory or memory-mapped)."""

    chars: torch.Tensor  # (num_tokens,) uint8, ASCII codes of " " and "a".."z"
    counts: dict[str, int]  # how often each character occurs
    sha1: str  # of the file's bytes
    cache: Path | None = None  # the memory-mapped file, if any


def clean_chunk(raw: bytes, after_space: bool) -> tuple[np.ndarray, bool]:
    """The book's cleaning of one chunk; `after_space`: the previous chunk ended in a space
    (a run of non-letters may straddle two chunks and must still become one space)."""
    mapped = np.frombuffer(raw.translate(CLEAN_TABLE), dtype=np.uint8)
    space = mapped == SPACE
    keep = np.empty(len(mapped), dtype=bool)
    keep[0] = not (space[0] and after_space)
    np.logical_not(space[1:] & space[:-1], out=keep[1:])  # drop a space that follows a space
    return mapped[keep], bool(space[-1])


def chunks(path: Path) -> Iterator[bytes]:
    """The file's bytes, 16 MB at a time; one-line errors for missing, empty, binary, non-UTF-8."""
    if not path.is_file():
        raise UserError(f"data.path={str(path)!r} does not exist or is not a file")
    decoder = codecs.getincrementaldecoder("utf-8")()
    done = 0
    with open(path, "rb") as f:
        while raw := f.read(CHUNK_BYTES):
            if b"\x00" in raw:
                raise UserError(
                    f"data.path={str(path)!r} is a binary file (a NUL byte at "
                    f"{done + raw.index(0)}); a UTF-8 text file is needed"
                )
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
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise UserError(
            f"data.path={str(path)!r} is not UTF-8 text (it ends inside a character); "
            "convert it to UTF-8"
        ) from None


def clean_file(path: Path, out) -> tuple[dict[str, int], str]:
    """Stream `path` through the cleaning into `out` (anything with `.write(bytes)`).

    Returns the character counts and the SHA-1 of the file's bytes."""
    digest, counts, after_space = hashlib.sha1(), torch.zeros(256, dtype=torch.int64), False
    for raw in chunks(path):
        digest.update(raw)
        cleaned, after_space = clean_chunk(raw, after_space)
        counts += torch.from_numpy(cleaned).bincount(minlength=256)
        out.write(cleaned.tobytes())
    found = {chr(c): int(n) for c, n in enumerate(counts.tolist()) if n}
    if set(found) <= {" "}:
        raise UserError(f"{path} contains no letters A-Z: nothing to learn from")
    return found, digest.hexdigest()


def wants_cache(path: Path, min_cache_bytes: int) -> bool:
    """Whether `path` is large enough to be cleaned once into a memory-mapped cache."""
    return path.is_file() and path.stat().st_size >= min_cache_bytes


def load_corpus(
    path: str | Path, cache_dirs: tuple[Path, ...] = (), min_cache_bytes: int = 0
) -> Corpus:
    """Clean `path` into a `Corpus`.

    Files of at least `min_cache_bytes` are cleaned once into `<name>.<sha1>.chars` (with a
    `.json` of counts), in the first writable folder of `cache_dirs`, and memory-mapped from
    there: later runs only hash the text, and a corpus larger than memory never sits in it.
    """
    path = Path(path)
    if not cache_dirs or not wants_cache(path, min_cache_bytes):
        cleaned = io.BytesIO()
        counts, sha1 = clean_file(path, cleaned)
        return Corpus(torch.frombuffer(cleaned.getbuffer(), dtype=torch.uint8), counts, sha1)
    sha1 = sha1sum(path)
    for folder in cache_dirs:
        cached = _open_cache(folder, path.name, sha1)
        if cached is not None:
            return cached
    errors = []
    for folder in cache_dirs:
        try:
            return _write_cache(path, folder)
        except OSError as err:
            errors.append(f"{folder}: {err.strerror}")
    raise UserError(f"cannot write the encoded cache of {path} ({'; '.join(errors)})")


def _cache_paths(folder: Path, name: str, sha1: str) -> tuple[Path, Path]:
    stem = folder / f"{name}.{sha1[:16]}"
    return stem.with_name(stem.name + ".chars"), stem.with_name(stem.name + ".json")


def _open_cache(folder: Path, name: str, sha1: str) -> Corpus | None:
    chars_path, meta_path = _cache_paths(folder, name, sha1)
    if not (chars_path.is_file() and meta_path.is_file()):
        return None
    meta = json.loads(meta_path.read_text())
    if meta.get("sha1") != sha1 or meta.get("num_tokens") != chars_path.stat().st_size:
        return None  # a stale or foreign pair: rewrite it
    # Copy-on-write mapping: pages are read on demand and never written back.
    chars = torch.from_numpy(np.memmap(chars_path, dtype=np.uint8, mode="c"))
    return Corpus(chars, meta["counts"], sha1, chars_path)


def _write_cache(path: Path, folder: Path) -> Corpus:
    """Clean into temp files renamed into place only when complete (the .json last)."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            counts, sha1 = clean_file(path, out)
        chars_path, meta_path = _cache_paths(folder, path.name, sha1)
        meta = {"sha1": sha1, "num_tokens": sum(counts.values()), "counts": counts}
        meta_tmp = Path(tmp).with_suffix(".json.part")
        meta_tmp.write_text(json.dumps(meta))
        os.replace(tmp, chars_path)
        os.replace(meta_tmp, meta_path)
    finally:
        for leftover in (Path(tmp), Path(tmp).with_suffix(".json.part")):
            leftover.unlink(missing_ok=True)
    return _open_cache(folder, path.name, sha1)

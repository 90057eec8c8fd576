"""A large text encoded once into a cache file next to it (or in the data folder), written whole,
and memory-mapped by later runs, which only hash the text."""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from rnnlm.data import sha1sum
from rnnlm.errors import UserError
from rnnlm.text import corpus
from rnnlm.text.corpus import BOOK, Corpus, code_dtype, encode_file, narrow, sorted_codes
from rnnlm.vocab import TextFormat


def wants_cache(path: Path, min_cache_bytes: int) -> bool:
    """Whether `path` is large enough to be cleaned once into a memory-mapped cache."""
    return path.is_file() and path.stat().st_size >= min_cache_bytes


def load_corpus(
    path: str | Path,
    cache_dirs: tuple[Path, ...] = (),
    min_cache_bytes: int = 0,
    fmt: TextFormat = BOOK,
) -> Corpus:
    """`path` read as `fmt` into a `Corpus`; a file of `min_cache_bytes` or more is encoded once
    into `<name>.<sha1>.chars` (or `.<preprocess>-<token>.ids`) and a `.json` in the first
    writable folder of `cache_dirs`, then memory-mapped."""
    path = Path(path)
    if not cache_dirs or not wants_cache(path, min_cache_bytes):
        encoded = io.BytesIO()
        counts, sha1, symbols = encode_file(path, encoded, fmt)
        codes = np.frombuffer(encoded.getbuffer(), dtype=_written_dtype(fmt))
        symbols, recode = sorted_codes(symbols)
        codes = narrow(codes, len(symbols), recode)
        return Corpus(torch.from_numpy(codes), symbols, counts, sha1)
    sha1 = sha1sum(path)
    for folder in cache_dirs:
        cached = _open_cache(folder, path.name, sha1, fmt)
        if cached is not None:
            return cached
    errors = []
    for folder in cache_dirs:
        try:
            return _write_cache(path, folder, fmt)
        except OSError as err:
            errors.append(f"{folder}: {err.strerror}")
    raise UserError(f"cannot write the encoded cache of {path} ({'; '.join(errors)})")


def _written_dtype(fmt: TextFormat) -> np.dtype:
    return np.dtype(np.uint8 if fmt.token == "byte" or fmt == BOOK else np.int32)


def _cache_paths(folder: Path, name: str, sha1: str, fmt: TextFormat) -> tuple[Path, Path]:
    suffix = ".chars" if fmt == BOOK else f".{fmt.preprocess}-{fmt.token}.ids"
    stem = folder / f"{name}.{sha1[:16]}"
    return stem.with_name(stem.name + suffix), stem.with_name(stem.name + suffix + ".json")


def _open_cache(folder: Path, name: str, sha1: str, fmt: TextFormat) -> Corpus | None:
    codes_path, meta_path = _cache_paths(folder, name, sha1, fmt)
    if not (codes_path.is_file() and meta_path.is_file()):
        return None
    meta = json.loads(meta_path.read_text())
    symbols = tuple(meta.get("symbols") or ())
    dtype = code_dtype(len(symbols)) if symbols else None
    if (
        meta.get("sha1") != sha1
        or dtype is None
        or meta.get("num_tokens", -1) * dtype.itemsize != codes_path.stat().st_size
    ):
        return None  # a stale or foreign pair: rewrite it
    # Copy-on-write mapping: pages are read on demand and never written back.
    codes = torch.from_numpy(np.memmap(codes_path, dtype=dtype, mode="c"))
    return Corpus(codes, symbols, meta["counts"], sha1, codes_path)


def _write_cache(path: Path, folder: Path, fmt: TextFormat) -> Corpus:
    """Encode into temp files, renamed into place only when complete (the .json last)."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".part")
    narrowed, meta_tmp = Path(tmp + ".narrow"), Path(tmp).with_suffix(".json.part")
    try:
        with os.fdopen(fd, "wb") as out:
            counts, sha1, symbols = encode_file(path, out, fmt)
        written = np.memmap(tmp, dtype=_written_dtype(fmt), mode="r")
        symbols, recode = sorted_codes(symbols)
        final = Path(tmp)
        if recode is not None or code_dtype(len(symbols)) != written.dtype:
            with open(narrowed, "wb") as out:  # int32 first-appearance codes while coding
                for first in range(0, len(written), corpus.CHUNK_BYTES):
                    part = written[first : first + corpus.CHUNK_BYTES]
                    out.write(narrow(part, len(symbols), recode).tobytes())
            final = narrowed
        num_tokens = len(written)
        del written
        codes_path, meta_path = _cache_paths(folder, path.name, sha1, fmt)
        meta = {"sha1": sha1, "num_tokens": num_tokens, "counts": counts, "symbols": symbols}
        meta_tmp.write_text(json.dumps(meta))
        os.replace(final, codes_path)
        os.replace(meta_tmp, meta_path)
    finally:
        for leftover in (Path(tmp), narrowed, meta_tmp):
            leftover.unlink(missing_ok=True)
    return _open_cache(folder, path.name, sha1, fmt)

"""A large text encoded once into a token array next to it (or in the data folder), written whole
(`rnnlm.files`) with its symbols and counts beside it, and memory-mapped by later runs, which only
hash the text."""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from rnnlm.data import sha1sum
from rnnlm.errors import UserError
from rnnlm.files import write_file, write_json
from rnnlm.text.corpus import BOOK, Corpus, code_dtype, encode_file
from rnnlm.vocab import TextFormat


def wants_cache(path: Path, min_cache_bytes: int) -> bool:
    """Whether `path` is large enough to be encoded once into a memory-mapped cache."""
    return path.is_file() and path.stat().st_size >= min_cache_bytes


def load_corpus(
    path: str | Path,
    cache_dirs: tuple[Path, ...] = (),
    min_cache_bytes: int = 0,
    fmt: TextFormat = BOOK,
) -> Corpus:
    """`path` read as `fmt` into a `Corpus`; a file of `min_cache_bytes` or more is encoded once
    into `<name>.<sha1>.<preprocess>-<token>.codes` and a `.json` in the first writable folder
    of `cache_dirs`, then memory-mapped."""
    path = Path(path)
    if not cache_dirs or not wants_cache(path, min_cache_bytes):
        encoded = io.BytesIO()
        counts, sha1, symbols = encode_file(path, encoded, fmt)
        codes = np.frombuffer(encoded.getbuffer(), dtype=code_dtype(fmt))
        return Corpus(torch.from_numpy(codes), symbols, counts, sha1)
    sha1 = sha1sum(path)
    for folder in cache_dirs:
        codes_path = folder / f"{path.name}.{sha1[:16]}.{fmt.preprocess}-{fmt.token}.codes"
        meta_path = codes_path.with_name(codes_path.name + ".json")
        cached = open_cache(codes_path, meta_path, sha1, fmt)
        if cached is not None:
            return cached
        if writable(folder):
            read = {}

            def encode(out, read=read) -> None:
                read["counts"], _, read["symbols"] = encode_file(path, out, fmt)

            write_file(codes_path, encode)
            meta = {"sha1": sha1, "counts": read["counts"], "symbols": list(read["symbols"])}
            write_json(meta_path, meta)  # last: a codes file without it is not taken
            return open_cache(codes_path, meta_path, sha1, fmt)
    folders = ", ".join(str(f) for f in cache_dirs)
    raise UserError(f"the encoded cache of {path} cannot be written in any of: {folders}")


def writable(folder: Path) -> bool:
    """A real attempt (permission bits say nothing for root, or on /proc)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def open_cache(codes_path: Path, meta_path: Path, sha1: str, fmt: TextFormat) -> Corpus | None:
    """The cached codes, memory-mapped, or None for a missing, stale or cut-short pair."""
    if not (codes_path.is_file() and meta_path.is_file()):
        return None
    meta = json.loads(meta_path.read_text())
    tokens = sum(meta.get("counts", {}).values())
    if meta.get("sha1") != sha1 or tokens * code_dtype(fmt).itemsize != codes_path.stat().st_size:
        return None  # a stale or foreign pair: written again
    # Copy-on-write mapping: pages are read on demand and never written back.
    codes = torch.from_numpy(np.memmap(codes_path, dtype=code_dtype(fmt), mode="c"))
    return Corpus(codes, tuple(meta["symbols"]), meta["counts"], sha1, codes_path)

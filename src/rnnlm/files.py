"""Files written whole or not at all (the book's download, checkpoints, results.json, sweep
reports, figures): to a temporary file in their own folder (a rename across filesystems would be
a copy, which a full disk or a kill cuts short), flushed to the disk, then renamed over the old
one."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from rnnlm.errors import UserError


def write_file(path: str | Path, write: Callable[[BinaryIO], object], kept: str = "") -> None:
    """`write(f)` on a temporary file beside `path`, renamed over it; an OSError (a full disk, a
    read-only folder) becomes a `UserError` naming the file, the reason, and `kept`."""
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(f.fileno(), 0o666 & ~umask)  # as open() makes it (mkstemp: 0600)
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:  # also Ctrl-C, or an error in `write`: the old file stays
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if isinstance(err, OSError):
            reason = err.strerror or type(err).__name__
            raise UserError(f"writing {path} failed ({reason}){kept}") from None
        raise


def write_bytes(path: str | Path, data: bytes, kept: str = "") -> None:
    write_file(path, lambda f: f.write(data), kept)


def write_json(path: str | Path, value: object) -> None:
    write_bytes(path, (json.dumps(value, indent=2) + "\n").encode())


def flatten(tree: dict, sep: str = ".", prefix: str = "") -> dict:
    """{"a": {"b": 1}} -> {"a.b": 1}"""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, sep, f"{prefix}{key}{sep}"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat

"""Getting the book's text: d2l's download (SHA-1 checked, atomic).

Follows d2l.ai §9.2 (`d2l.download` with its SHA-1 check); reading and checking the text
itself is `rnnlm.corpus`.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from rnnlm.errors import UserError

DATA_URL = "http://d2l-data.s3-accelerate.amazonaws.com/timemachine.txt"
DATA_SHA1 = "090b5e7e70c295757f55df93cb0a180b9691891a"


def sha1sum(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, root: str | Path, sha1: str | None) -> Path:
    """Fetch `url` into `root` once; a cached file is reused only if its SHA-1 matches.

    The bytes go to a temporary file that is renamed only after the checksum passed, so an
    interrupted or corrupt download never becomes the cache.
    """
    root = Path(root)
    target = root / url.rstrip("/").split("/")[-1]
    if target.is_file() and (sha1 is None or sha1sum(target) == sha1):
        return target
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"data.root={str(root)!r} cannot be created: {err.strerror}") from None
    fd, tmp = tempfile.mkstemp(dir=root, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            while chunk := response.read(1 << 20):
                out.write(chunk)
        got = sha1sum(Path(tmp))
        if sha1 is not None and got != sha1:
            raise UserError(
                f"downloaded {url} has SHA-1 {got}, expected {sha1}; the file was discarded"
            )
        os.replace(tmp, target)
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", None) or err
        raise UserError(
            f"cannot download {url} ({reason}); offline? copy the book to {target} (its SHA-1 "
            "is checked) or pass data.path=FILE to use a local copy"
        ) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target

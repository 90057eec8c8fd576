"""generate.py's prefix (given, from a file or standard input) and the settings that change
nothing."""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig

from rnnlm.errors import UserError


def cleaned_prefix(cfg: DictConfig, fmt) -> str:
    """The prefix preprocessed as the model's text was (`fmt`), saying so when that changes it."""
    given = read_prefix(cfg)
    prefix = fmt.clean(given)
    if prefix != given:
        print(f"prefix {given!r} preprocessed as in training ({fmt}): {prefix!r}")
    if given.strip() and not prefix.strip():
        print(
            f"prefix {given!r} is only spaces after the book's preprocessing (it keeps letters "
            "only): the continuation starts from a space"
        )
    return prefix


def read_prefix(cfg: DictConfig) -> str:
    """`prefix`, or all of `prefix_file` (`-`: standard input): any text, no quoting."""
    source = cfg.get("prefix_file")
    if source is None:
        return str(cfg.prefix)
    if source == "-":
        return sys.stdin.read()
    path = Path(source)
    if not path.is_file():
        raise UserError(f"prefix_file={source!r} does not exist or is not a file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"prefix_file={source!r} is not UTF-8 text (byte {err.start})") from None


def settings_without_effect(cfg: DictConfig, vocab_size: int) -> list[str]:
    """One line for each setting given that changes nothing."""
    notes = []
    if cfg.strategy != "sample":
        given = [k for k in ("temperature", "alpha", "top_k", "top_p") if cfg.get(k) is not None]
        if given:
            notes.append(
                f"{', '.join(f'{k}={cfg[k]}' for k in given)} has no effect with "
                f"strategy={cfg.strategy}: add strategy=sample"
            )
    top_k = cfg.get("top_k")
    if cfg.strategy == "sample" and top_k is not None and top_k >= vocab_size:
        notes.append(
            f"top_k={top_k} has no effect: the vocabulary has {vocab_size} tokens, so every "
            "token stays a candidate"
        )
    return notes

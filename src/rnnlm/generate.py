"""The generate task: a checkpoint's continuation of a prefix (d2l.ai §9.5 prediction and its
exercises: sampling, and sharpening with an exponent alpha)."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import torch
from omegaconf import DictConfig

from rnnlm.checkpoints import load_lm
from rnnlm.errors import UserError
from rnnlm.fast import threads
from rnnlm.fast.cpu import step_work
from rnnlm.sampling import Sampler


def read_prefix(cfg: DictConfig) -> str:
    """`prefix`, or the whole of `prefix_file` as it is (`-`: standard input), which takes any
    text without the command line's quoting."""
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


def generate(cfg: DictConfig) -> list[str]:
    """Print and return `num_samples` continuations of the prefix."""
    sampler = Sampler.from_options(cfg.strategy, cfg.temperature, cfg.alpha, cfg.top_k, cfg.top_p)
    model = load_lm(cfg.ckpt_path, map_location=cfg.device)
    for note in settings_without_effect(cfg, len(model.vocab)):
        print(note)
    threads.choose(cfg.threads, step_work(model, cfg.num_samples))
    given = read_prefix(cfg)
    fmt = model.text_format
    prefix = fmt.clean(given)
    if prefix != given:
        print(f"prefix {given!r} preprocessed as in training ({fmt}): {prefix!r}")
    if given.strip() and not prefix.strip():
        print(
            f"prefix {given!r} is only spaces after the book's preprocessing (it keeps letters "
            "only): the continuation starts from a space"
        )
    generator = torch.Generator(model.device).manual_seed(cfg.seed)
    if cfg.num_samples > 1:  # one batch: the lines are complete only at the end
        texts = model.generate(
            prefix, cfg.num_preds, sampler, num_samples=cfg.num_samples, generator=generator
        )
        for text in texts:
            print(text)
        return texts
    # One continuation: printed as it is generated, a chunk at a time.
    steps = model.generate_tokens(prefix, cfg.num_preds, sampler, 1, generator)
    joiner = fmt.joiner()
    pieces, chunk = [prefix], []
    print(prefix, end="", flush=True)
    for step in itertools.chain(steps, [None]):
        if step is not None:
            chunk.append(step)
        if step is None or len(chunk) == STREAM_CHUNK:
            tokens = model.vocab.to_tokens(torch.cat(chunk).tolist()) if chunk else []
            pieces.append(joiner(tokens, final=step is None))
            print(pieces[-1], end="", flush=True)
            chunk = []
    print()
    return ["".join(pieces)]


STREAM_CHUNK = 200  # tokens printed at a time

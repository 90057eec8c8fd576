"""The generate task: a checkpoint's continuation of a prefix (d2l.ai §9.5 prediction and its
exercises: sampling, and sharpening with an exponent alpha)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from omegaconf import DictConfig

from rnnlm.checkpoints import load_lm
from rnnlm.errors import UserError, user_errors
from rnnlm.fast.threads import use_threads
from rnnlm.sampling import Sampler, print_stream
from rnnlm.sampling import generate as continuations


@user_errors
def generate(cfg: DictConfig) -> list[str]:
    """Print and return `num_samples` continuations of the prefix."""
    sampler = Sampler.from_options(cfg.strategy, cfg.temperature, cfg.alpha, cfg.top_k, cfg.top_p)
    model = load_lm(cfg.ckpt_path, map_location=cfg.device)
    for note in settings_without_effect(cfg, len(model.vocab)):
        print(note)
    use_threads(cfg.get("threads"))
    prefix = cleaned_prefix(cfg, model.text_format)
    generator = torch.Generator(model.device).manual_seed(cfg.seed)
    if cfg.num_samples == 1:  # printed as it is generated
        return [print_stream(model, prefix, cfg.num_preds, sampler, generator)]
    texts = continuations(
        model, prefix, cfg.num_preds, sampler, num_samples=cfg.num_samples, generator=generator
    )
    for text in texts:  # one batch: the lines are complete only at the end
        print(text)
    return texts


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

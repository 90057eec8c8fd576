"""The generate task: a checkpoint's continuation of a prefix (d2l.ai §9.5 prediction and its
exercises: sampling, and sharpening with an exponent alpha)."""

from __future__ import annotations

import itertools

import torch
from omegaconf import DictConfig

from rnnlm.checkpoints import load_lm
from rnnlm.fast import threads
from rnnlm.fast.cpu import step_work
from rnnlm.ops.prompt import read_prefix, settings_without_effect
from rnnlm.sampling import Sampler, generate_tokens
from rnnlm.sampling import generate as continuations


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
        texts = continuations(
            model, prefix, cfg.num_preds, sampler, num_samples=cfg.num_samples, generator=generator
        )
        for text in texts:
            print(text)
        return texts
    # One continuation: printed as it is generated, a chunk at a time.
    steps = generate_tokens(model, prefix, cfg.num_preds, sampler, 1, generator)
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

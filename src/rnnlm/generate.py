"""The generate task: a checkpoint's continuation of a prefix (d2l.ai §9.5 prediction and its
exercises: sampling, and sharpening with an exponent alpha)."""

from __future__ import annotations

import itertools

import torch
from omegaconf import DictConfig

from rnnlm import threads
from rnnlm.checkpoints import load_lm
from rnnlm.runtime import step_work
from rnnlm.sampling import Sampler
from rnnlm.vocab import preprocess


def generate(cfg: DictConfig) -> list[str]:
    """Print and return `num_samples` continuations of `cfg.prefix`."""
    sampler = Sampler.from_options(cfg.strategy, cfg.temperature, cfg.alpha, cfg.top_k, cfg.top_p)
    model = load_lm(cfg.ckpt_path, map_location=cfg.device)
    threads.choose(cfg.threads, step_work(model, cfg.num_samples))
    prefix = preprocess(str(cfg.prefix))
    if prefix != cfg.prefix:
        print(f"prefix {cfg.prefix!r} preprocessed as in training: {prefix!r}")
    generator = torch.Generator(model.device).manual_seed(cfg.seed)
    if cfg.num_samples > 1:  # one batch: the lines are complete only at the end
        texts = model.generate(prefix, cfg.num_preds, sampler, cfg.num_samples, generator)
        for text in texts:
            print(text)
        return texts
    # One continuation: printed as it is generated, a chunk at a time.
    steps = model.generate_tokens(prefix, cfg.num_preds, sampler, 1, generator)
    pieces, chunk = [prefix], []
    print(prefix, end="", flush=True)
    for step in itertools.chain(steps, [None]):
        if step is not None:
            chunk.append(step)
        if chunk and (step is None or len(chunk) == STREAM_CHUNK):
            pieces.append("".join(model.vocab.to_tokens(torch.cat(chunk).tolist())))
            print(pieces[-1], end="", flush=True)
            chunk = []
    print()
    return ["".join(pieces)]


STREAM_CHUNK = 200  # characters printed at a time

"""The generate task: a checkpoint's continuation of a prefix (d2l.ai §9.5 prediction and its
exercises: sampling, and sharpening with an exponent alpha)."""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from rnnlm.data import preprocess
from rnnlm.lm import load_lm
from rnnlm.sampling import Sampler


def generate(cfg: DictConfig) -> list[str]:
    """Print and return `num_samples` continuations of `cfg.prefix`."""
    sampler = Sampler.from_options(cfg.strategy, cfg.temperature, cfg.alpha, cfg.top_k, cfg.top_p)
    model = load_lm(cfg.ckpt_path, map_location=cfg.device)
    prefix = preprocess(str(cfg.prefix))
    if prefix != cfg.prefix:
        print(f"prefix {cfg.prefix!r} preprocessed as in training: {prefix!r}")
    generator = torch.Generator(model.device).manual_seed(cfg.seed)
    texts = model.generate(prefix, cfg.num_preds, sampler, cfg.num_samples, generator)
    for text in texts:
        print(text)
    return texts

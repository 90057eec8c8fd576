"""The generate task: a checkpoint's continuation of a prefix (d2l.ai §9.5 prediction and its
exercises: sampling, and sharpening with an exponent alpha)."""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from rnnlm.checkpoints import load_lm
from rnnlm.fast import threads
from rnnlm.fast.cpu import step_work
from rnnlm.ops.prompt import cleaned_prefix, settings_without_effect
from rnnlm.sampling import Sampler, print_stream
from rnnlm.sampling import generate as continuations


def generate(cfg: DictConfig) -> list[str]:
    """Print and return `num_samples` continuations of the prefix."""
    sampler = Sampler.from_options(cfg.strategy, cfg.temperature, cfg.alpha, cfg.top_k, cfg.top_p)
    model = load_lm(cfg.ckpt_path, map_location=cfg.device)
    for note in settings_without_effect(cfg, len(model.vocab)):
        print(note)
    threads.choose(cfg.threads, step_work(model, cfg.num_samples))
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

"""Ensembles: language models' probabilities of each token averaged, optionally mixed with a PPM
model's (`rnnlm.scoring.mixture.PPMMixture`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn import functional as F

from rnnlm.carry import CarriedStates
from rnnlm.errors import UserError
from rnnlm.metrics import SplitFigures
from rnnlm.scoring.mixture import at


def token_log_probs(model, X: torch.Tensor, state: Any = None):
    """log p(token | X, state) of every token of the vocabulary at every step, (batch, steps,
    vocab), and the model's new state."""
    outputs, state = model.hidden(X.T, state)
    return F.log_softmax(model.output_layer(outputs), dim=-1), state


def average_log_probs(log_probs: Sequence[torch.Tensor]) -> torch.Tensor:
    """The log of the models' averaged probabilities (of targets, or of every token)."""
    if len(log_probs) == 1:
        return log_probs[0]
    stacked = torch.stack(list(log_probs))
    return torch.logsumexp(stacked, 0) - math.log(len(stacked))


def check_same_vocabulary(models: Sequence, paths: Sequence[str]) -> None:
    first, fmt = models[0].vocab.idx_to_token, models[0].text_format
    for model, path in zip(models[1:], paths[1:], strict=True):
        if model.text_format != fmt:
            raise UserError(
                f"ckpt_path={path!r} read its text with {model.text_format} and {paths[0]!r} "
                f"with {fmt}: an ensemble needs checkpoints that read text the same way"
            )
        if model.vocab.idx_to_token != first:
            raise UserError(
                f"ckpt_path={path!r} has a vocabulary of {len(model.vocab)} tokens and "
                f"{paths[0]!r} one of {len(first)} (or other tokens): an ensemble averages "
                "probabilities of the same tokens; give checkpoints trained on the same text"
            )


class Ensemble(pl.LightningModule):
    """Models scored together through Lightning's loops, each carrying its own state: the average
    of their probabilities, mixed with a PPM model's when `mixture` is given."""

    def __init__(
        self, models: Sequence[pl.LightningModule], paths: Sequence[str], mixture=None
    ) -> None:
        super().__init__()
        if not models:
            raise UserError("ckpt_path=[] is not allowed: give one checkpoint or a list of them")
        check_same_vocabulary(models, paths)
        self.models = nn.ModuleList(models)
        self.figures = SplitFigures()
        self.carried = [CarriedStates() for _ in models]
        self.mixture = mixture

    def scored_step(self, batch: tuple, batch_idx: int, split: str) -> None:
        X, Y, *position = batch
        log_probs = []
        for model, carried in zip(self.models, self.carried, strict=True):
            log_p, state = token_log_probs(model, X, carried.take(split, position))
            carried.keep(split, position, X.shape[1], state)
            log_probs.append(log_p)
        log_p = average_log_probs(log_probs)
        if self.mixture is not None:
            log_p = self.mixture.mix(log_p, int(position[0]), Y)
        else:
            log_p = at(log_p, Y)
        self.figures.update(split, -log_p.mean(), Y.numel())
        if batch_idx == 0:
            self.figures.log(self, split)

    def validation_step(self, batch: tuple, batch_idx: int) -> None:
        self.scored_step(batch, batch_idx, "val")

    def test_step(self, batch: tuple, batch_idx: int) -> None:
        self.scored_step(batch, batch_idx, "test")

"""Epoch figures as torchmetrics objects (d2l.ai §9.3: perplexity is exp of the mean
cross-entropy per token) handed to `self.log`, which computes them once an epoch (one sync) and
resets them."""

from __future__ import annotations

import math

import torch
from torch import nn
from torchmetrics import MeanMetric, Metric, SumMetric

FORMS = ("loss", "ppl", "bpc")
# The figures each split reports, as `<split>/<form>`.
SPLIT_FORMS = {"train": ("loss", "ppl"), "val": ("loss", "ppl"), "test": FORMS}


class TokenLoss(MeanMetric):
    """A split's token-weighted mean cross-entropy, as `form`: `loss` (nats), `ppl` or `bpc`."""

    def __init__(self, form: str = "loss") -> None:
        super().__init__()
        if form not in FORMS:
            raise ValueError(f"form={form!r}: use one of {FORMS}")
        self.form = form

    def compute(self) -> torch.Tensor:
        loss = super().compute()
        if self.form == "ppl":
            return torch.exp(loss)
        return loss / math.log(2) if self.form == "bpc" else loss


def own_metric_states(module: nn.Module) -> None:
    """This process's own copy of every metric state (from `setup`): ddp_spawn on a CPU copies
    parameters and buffers out of shared memory, not metric states."""
    for metric in module.modules():
        if isinstance(metric, Metric):
            for name, value in metric.metric_state.items():
                own = value.clone() if torch.is_tensor(value) else [v.clone() for v in value]
                setattr(metric, name, own)


class SplitFigures(nn.Module):
    """Every split's `<split>/<form>` figures, and the tokens scored in val and test."""

    def __init__(self) -> None:
        super().__init__()
        self.figures = nn.ModuleDict(
            {
                f"{split}_{form}": TokenLoss(form)
                for split, forms in SPLIT_FORMS.items()
                for form in forms
            }
        )
        self.tokens = nn.ModuleDict({split: SumMetric() for split in ("val", "test")})

    def update(self, split: str, loss: torch.Tensor, tokens: int) -> None:
        for form in SPLIT_FORMS[split]:
            self.figures[f"{split}_{form}"].update(loss.detach(), tokens)
        if split in self.tokens:
            self.tokens[split].update(tokens)

    def ppl(self, split: str) -> torch.Tensor:
        """The split's perplexity so far (synced; Lightning's compute reuses it)."""
        return self.figures[f"{split}_ppl"].compute()

    def log(self, module, split: str) -> None:
        """Hand `split`'s metric objects to `module.log` (perplexity on the progress bar)."""
        for form in SPLIT_FORMS[split]:
            metric = self.figures[f"{split}_{form}"]
            module.log(
                f"{split}/{form}", metric, on_step=False, on_epoch=True, prog_bar=form == "ppl"
            )
        if split in self.tokens:
            module.log(f"{split}/tokens", self.tokens[split], on_step=False, on_epoch=True)

"""Epoch figures as torchmetrics objects (d2l.ai §9.3: perplexity is exp of the mean
cross-entropy per token) handed to `self.log`, which computes them once an epoch (one sync) and
resets them; what a finished run keeps of them (results.json) and prints."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

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


# results.json's keys for a language model, and the metrics they hold
RESULTS = {
    "val_ppl": "val/ppl",
    "best_val_ppl": "val/ppl_best",
    "train_ppl": "train/ppl",
    "test_loss": "test/loss",
    "test_ppl": "test/ppl",
    "test_bpc": "test/bpc",
    "val_bits_per_char": "val/bits_per_char",
    "test_bits_per_char": "test/bits_per_char",
    "test_tokens": "test/tokens",
    "test_ppl_dynamic": "test/ppl_dynamic",
    "test_bpc_dynamic": "test/bpc_dynamic",
}


def results(metrics: Mapping[str, float]) -> dict[str, Any]:
    """What results.json keeps of a language model's `metrics`."""
    return {key: metrics[name] for key, name in RESULTS.items() if name in metrics}


def summary(results: Mapping[str, Any]) -> list[str]:
    """The lines printed at the end of a language model's run: val/ppl (last and best: the
    checkpoint tested) and the test figures."""
    lines = [f"val/ppl {results['val_ppl']:.3f} (best {results['best_val_ppl']:.3f})"]
    unit = "token" if "test_bits_per_char" in results else "character"  # words, bytes: tokens
    if "test_ppl" in results:
        lines.append(
            f"test/ppl {results['test_ppl']:.3f} ({results['test_bpc']:.3f} bits per {unit}, "
            f"{results['test_tokens']:.0f} {unit}s, {results['test_checkpoint']})"
        )
    if "test_bits_per_char" in results:
        unk_share = (results.get("unknown_tokens") or {}).get("test", 0) / results["test_tokens"]
        lines.append(
            f"test/bits_per_char {results['test_bits_per_char']:.3f} (bits per character of the "
            + (
                "text: comparable with a character model's)"
                if unk_share < 0.01
                else f"text; not comparable with a character model's: {unk_share:.0%} of its test "
                "tokens were <unk>, each coded as one token)"
            )
        )
    if any((results.get("unknown_tokens") or {}).values()):
        unknown = results["unknown_tokens"]
        lines.append(
            "tokens outside the vocabulary, read as <unk>: "
            + ", ".join(f"{part} {n}" for part, n in unknown.items())
        )
    if "test_ppl_dynamic" in results:
        lines.append(
            f"test/ppl_dynamic {results['test_ppl_dynamic']:.3f} "
            f"({results['test_bpc_dynamic']:.3f} bits per character, dynamic evaluation)"
        )
    return lines

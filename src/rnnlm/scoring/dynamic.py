"""Dynamic evaluation (Krause et al., 2018): score a segment, take a gradient step on it, score the
next; each character scored once, state carried, by weights that learned only from the text before
it.

The step is Krause et al.'s RMS-normalised one: theta -= lr g / (root of the weight's mean squared
train gradient + eps), then theta += decay' (theta_0 - theta), decay' = decay x that root over its
mean (at most 1); it beats plain SGD steps on validation (benchmarks/results/choose_scoring.json).
`adapt_lr` > 0: the step's gain times exp(adapt_lr cos), cos between a step and the last."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pytorch_lightning as pl
import torch

from rnnlm.carry import detach_state
from rnnlm.errors import UserError, require_count, require_number
from rnnlm.scoring.ensemble import average_log_probs, token_log_probs
from rnnlm.scoring.mixture import at


@dataclass(frozen=True)
class Adaptation:
    """How dynamic evaluation learns: `lr`, `decay`, segments of `bptt` of `streams` streams,
    train batches for the mean squared gradients."""

    lr: float = 1e-4
    decay: float = 0.0
    bptt: int = 20
    gradient_batches: int = 100
    eps: float = 1e-5
    streams: int = 1
    adapt_lr: float = 0.0

    def __post_init__(self) -> None:
        require_count("dynamic_eval.bptt", self.bptt)
        require_count("dynamic_eval.gradient_batches", self.gradient_batches)
        require_count("dynamic_eval.streams", self.streams)
        for name in ("lr", "decay", "eps", "adapt_lr"):
            require_number(f"dynamic_eval.{name}", getattr(self, name), ">= 0")


def mean_squared_gradients(model, batches: Iterable[tuple], limit: int) -> list[torch.Tensor]:
    """Each parameter's squared gradient, averaged over the first `limit` streamed batches
    (the train part, state carried): how large a step each weight usually gets."""
    params = [p for p in model.parameters() if p.requires_grad]
    sums = [torch.zeros_like(p) for p in params]
    state, count = None, 0
    for X, Y, position in batches:
        if count == limit:
            break
        X, Y = X.to(model.device), Y.to(model.device)
        with torch.enable_grad():
            loss, state = model.batch_loss(X, Y, state if position else None)
            grads = torch.autograd.grad(loss, params)
        for total, g in zip(sums, grads, strict=True):
            total.add_(g * g)
        state, count = detach_state(state), count + 1
    if count == 0:
        raise UserError("dynamic evaluation needs the train part's gradients: it has no batches")
    return [total / count for total in sums]


def dynamic_score(
    model,
    batches: Iterable[tuple],
    adaptation: Adaptation,
    squares: list,
    read_first: Iterable[Iterable[tuple]] = (),
    mixture=None,
) -> tuple[float, int]:
    """The mean loss of `batches` (streamed segments, in order) under dynamic evaluation and the
    tokens scored, after learning from each of `read_first`; the weights are put back. `model`
    may be a list (an ensemble); `squares`, its mean squared train gradients
    (`mean_squared_gradients`; one list a model for an ensemble); with a `mixture`, the mixture is
    scored. Lightning's test loop has no gradients: this loop is its own."""
    models = model if isinstance(model, list) else [model]
    squares_of = squares if isinstance(model, list) else [squares]
    params = [[p for p in m.parameters() if p.requires_grad] for m in models]
    trained = [[p.detach().clone() for p in ps] for ps in params]
    scales = [step_scales(ps, adaptation, sq) for ps, sq in zip(params, squares_of, strict=True)]
    modes = [m.training for m in models]
    for m in models:
        m.eval()  # no dropout; gradients still flow
    gains = [StepGain(adaptation.adapt_lr) for _ in models]
    try:
        for text in read_first:
            adapt(models, text, params, trained, scales, gains)
        total, tokens = adapt(models, batches, params, trained, scales, gains, mixture)
    finally:
        with torch.no_grad():
            for ps, p0s in zip(params, trained, strict=True):
                for p, p0 in zip(ps, p0s, strict=True):
                    p.copy_(p0)
        for m, mode in zip(models, modes, strict=True):
            m.train(mode)
    if tokens == 0:
        raise UserError("nothing to score: the part has no batches")
    return total / tokens, tokens


def dynamic_evaluation(
    models: list, dm, split: str, adaptation: Adaptation, read_first=(), mixture=None, own=None
):
    """Dynamic evaluation of part `split` of `dm` after the parts `read_first`; steps scaled by
    each model's train gradients of its own text (`own`). Returns the mean loss, the tokens and
    the streams."""
    own = own or dm
    train = own.streams("train", adaptation.bptt, own.batch_size)
    squares = [mean_squared_gradients(m, train, adaptation.gradient_batches) for m in models]
    first = [dm.streams(name, adaptation.bptt, adaptation.streams) for name in read_first]
    part = dm.streams(split, adaptation.bptt, adaptation.streams)
    if mixture is not None:
        mixture.use(part.starts)
    loss, tokens = dynamic_score(models, part, adaptation, squares, first, mixture)
    return loss, tokens, part


def adapt(models, batches, params, trained, scales, gains, mixture=None) -> tuple[float, int]:
    """Score each batch, then let every model step on it: (the summed loss, the tokens)."""
    states, total, tokens = [None] * len(models), 0.0, 0
    fused = len(models) == 1 and mixture is None  # one model alone: the fused loss of training
    for X, Y, position in batches:
        log_probs = []
        for i, model in enumerate(models):
            X, Y = X.to(model.device), Y.to(model.device)
            carried = states[i] if position else None
            with torch.enable_grad():
                if fused:
                    loss, states[i] = model.batch_loss(X, Y, carried)
                else:
                    log_p, states[i] = token_log_probs(model, X, carried)
                    loss = -at(log_p, Y).mean()
                    log_probs.append(log_p.detach())
                grads = torch.autograd.grad(loss, params[i])
            scored = loss.detach() if fused else None
            step(params[i], grads, trained[i], *scales[i], gains[i])
            states[i] = detach_state(states[i])
        if scored is None:
            log_p = average_log_probs(log_probs)
            log_p = at(log_p, Y) if mixture is None else mixture.mix(log_p, position, Y)
            scored = -log_p.mean()
        total += float(scored) * Y.numel()  # scored before the weights learned from it
        tokens += Y.numel()
    return total, tokens


class StepGain:
    """The factor of every step of one model, adapted as it reads (`Adaptation.adapt_lr`)."""

    LIMIT = 64.0  # the gain stays in [1 / LIMIT, LIMIT]

    def __init__(self, adapt_lr: float) -> None:
        self.adapt_lr, self.gain, self.last = adapt_lr, 1.0, None

    def __call__(self, updates: list[torch.Tensor]) -> float:
        """The gain of the step `updates`: the last one, times exp(adapt_lr x the cosine between
        this step and the one before it)."""
        if self.adapt_lr:
            if self.last is not None:
                dot = sum(float((u * v).sum()) for u, v in zip(updates, self.last, strict=True))
                norms = math.sqrt(sum(float((u * u).sum()) for u in updates))
                norms *= math.sqrt(sum(float((v * v).sum()) for v in self.last))
                cosine = dot / norms if norms > 0 else 0.0
                self.gain = min(
                    max(self.gain * math.exp(self.adapt_lr * cosine), 1 / self.LIMIT), self.LIMIT
                )
            self.last = updates
        return self.gain


@torch.no_grad()
def step(params, grads, trained, steps, decays, gain: StepGain) -> None:
    updates = [g * size for g, size in zip(grads, steps, strict=True)]
    factor = gain(updates)
    for p, update, p0, decay in zip(params, updates, trained, decays, strict=True):
        p.sub_(update * factor)
        p.add_((p0 - p) * decay)


def step_scales(params, adaptation: Adaptation, squares) -> tuple[list, list]:
    """Per weight: the factor of its gradient in a step, and its decay toward the trained value."""
    roots = [s.sqrt() for s in squares]
    mean_root = torch.cat([r.flatten() for r in roots]).mean()
    steps = [adaptation.lr / (r + adaptation.eps) for r in roots]
    decays = [(adaptation.decay * r / mean_root).clamp(max=1.0) for r in roots]
    return steps, decays


class DynamicTest(pl.Callback):
    """After the static test figure, the same weights under dynamic evaluation (`Adaptation`'s
    settings, after the parts `read_first`): `test/ppl_dynamic` and `test/bpc_dynamic`."""

    def __init__(self, read_first: Sequence[str] = (), **settings) -> None:
        self.adaptation = Adaptation(**settings)
        self.read_first = list(read_first)

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # The test loop runs in inference mode; dynamic evaluation needs gradients.
        with torch.inference_mode(False), torch.enable_grad():
            loss, _, _ = dynamic_evaluation(
                [pl_module], trainer.datamodule, "test", self.adaptation, self.read_first
            )
        # The same on every rank (each scores the whole part): sync_dist spares the warning.
        pl_module.log("test/ppl_dynamic", math.exp(loss), sync_dist=True)
        pl_module.log("test/bpc_dynamic", loss / math.log(2), sync_dist=True)

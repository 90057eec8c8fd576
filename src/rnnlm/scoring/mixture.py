"""A model's probabilities mixed with PPM models' (`rnnlm.scoring.ppm`): linear, with one weight
or weights learned online, or a product of whole distributions with fixed or learned
exponents."""

from __future__ import annotations

import math

import torch

from rnnlm.errors import UserError, require_count, require_number
from rnnlm.scoring.ppm import buckets


def check_weight(weight: object) -> float:
    why = " (the model's share of each probability; the PPM model has the rest)"
    return require_number("ppm_mixture.weight", weight, "in [0, 1]", why)


class OnlineWeights:
    """The model's share learned as the text is read (online EM, as context-mixing coders do):
    one weight per bucket of `ppm_read`, forgetting at 1 / `memory` a token. A batch is mixed
    with the weights of the batches before it."""

    PRIOR = 16.0  # tokens' worth of the starting weight

    def __init__(self, known: torch.Tensor, order: int, start: float, memory: int) -> None:
        require_count("ppm_mixture.memory", memory)
        if not 0 < start < 1:
            raise UserError(
                f"ppm_mixture.weight={start!r} with ppm_mixture.online=true is not allowed: the "
                "online weight starts there and could never move from 0 or 1; give one in (0, 1)"
            )
        self.known, self.memory = known, memory
        self.start, self.buckets = start, buckets(order)
        self.reset()

    def reset(self) -> None:
        """Forget what was learned: every weight back at the start."""
        self.counts = torch.full((self.buckets,), self.PRIOR, dtype=torch.float64)
        self.sums = self.counts * self.start

    def weights(self, offsets: torch.Tensor) -> torch.Tensor:
        return (self.sums / self.counts)[self.known[offsets]].clamp(1e-4, 1 - 1e-4)

    def learn(self, offsets, model, weight, log_p) -> None:
        """Add the model's share of each mixed probability (`log_p`) to its bucket's weight."""
        buckets = self.known[offsets].flatten()
        share = torch.exp(torch.log(weight) + model - log_p).flatten()
        seen = torch.bincount(buckets, minlength=len(self.counts)).double()
        kept = (1 - 1 / self.memory) ** seen
        self.sums = self.sums * kept + torch.bincount(buckets, share, minlength=len(self.sums))
        self.counts = self.counts * kept + seen

    def mean(self) -> float:
        return float(self.sums.sum() / self.counts.sum())


class GeometricWeights:
    """p ~ p_model^w_0 x p_PPM_1^w_1 x ... normalised (several PPM orders in turn): the model's
    exponent starts at `start`, the orders share the rest. With `rate` > 0 every exponent takes a
    gradient step of `rate` on each token's log loss after it is scored (geometric mixing: the
    many-token form of context-mixing coders' logistic mixing), token by token in reading order,
    step by step across streams."""

    def __init__(self, inputs: int, start: float, rate: float = 0.0) -> None:
        self.start = check_weight(start)
        self.rate = require_number("ppm_mixture.rate", rate, ">= 0", " (each exponent's step)")
        self.inputs = inputs
        self.reset()

    def reset(self) -> None:
        rest = [(1 - self.start) / (self.inputs - 1)] * (self.inputs - 1)
        self.w = torch.tensor([self.start, *rest], dtype=torch.float64)

    def mix(self, inputs: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
        """log p of `Y` (rows, steps) from `inputs` (rows, steps, inputs, vocab) of log p."""
        if not self.rate:
            return at(torch.log_softmax(torch.einsum("k,rskv->rsv", self.w, inputs), -1), Y)
        out = torch.empty(Y.shape, dtype=torch.float64)
        # Token by token: each token is mixed with the exponents the ones before it taught.
        for j in range(Y.shape[1]):
            for r in range(Y.shape[0]):
                x, y = inputs[r, j], int(Y[r, j])
                log_p = torch.log_softmax(self.w @ x, -1)
                out[r, j] = log_p[y]
                self.w += self.rate * (x[:, y] - x @ log_p.exp())
        return out


class PPMMixture:
    """p = w p_model + (1 - w) p_PPM for each token of a part read as streams (`starts`);
    `log_probs`: the PPM's log p of every token of the text; `online`: w learned as it reads;
    `full` (`ppm_read`'s every token of one or more orders, from a position): `GeometricWeights`
    instead. The pairs are kept for `best_weight`."""

    def __init__(
        self,
        log_probs: torch.Tensor,
        weight: float,
        starts: torch.Tensor,
        order: list[int],
        online: OnlineWeights | GeometricWeights | None = None,
        full: tuple[list[torch.Tensor], int] | None = None,
    ) -> None:
        self.log_probs, self.weight, self.starts = log_probs, check_weight(weight), starts
        if full is not None and online is None:  # a product with fixed exponents
            online = GeometricWeights(len(full[0]) + 1, self.weight)
        self.order, self.online, self.full = order, online, full
        self.pairs: list[tuple[torch.Tensor, torch.Tensor]] = []

    def model_loss(self) -> float:
        """The mean loss of the model alone over the tokens mixed so far."""
        return float(-self.tokens()[0].mean())

    def tokens(self) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.cat([m for m, _ in self.pairs]), torch.cat([p for _, p in self.pairs])

    def use(self, starts: torch.Tensor) -> None:
        """Mix on a part read as other streams, from scratch (the pairs kept and the weights
        learned are dropped)."""
        self.starts, self.pairs = starts, []
        if self.online is not None:
            self.online.reset()

    def mix(self, distributions: torch.Tensor, position: int, Y: torch.Tensor) -> torch.Tensor:
        """The mixture's log p of `Y` (rows, steps) from the model's log p of every token; target
        j of row r is token starts[r] + position + 1 + j."""
        model_log_p = at(distributions, Y)
        offsets = self.starts.unsqueeze(1) + position + 1 + torch.arange(Y.shape[1])
        ppm = self.log_probs[offsets].to(model_log_p.device, torch.float64)
        model = model_log_p.double()
        self.pairs.append((model.detach().flatten().cpu(), ppm.flatten().cpu()))
        if self.full is not None:
            tables, first = self.full
            inputs = [distributions.detach().double().cpu(), *(t[offsets - first] for t in tables)]
            log_p = self.online.mix(torch.stack(inputs, -2), Y.cpu())
            return log_p.to(model_log_p.device, model_log_p.dtype)
        if self.online is None:
            return mixed(model, ppm, self.weight).to(model_log_p.dtype)
        weight = self.online.weights(offsets).to(model.device)  # the batches before this one
        log_p = mixed(model, ppm, weight)
        self.online.learn(offsets, model.detach().cpu(), weight.cpu(), log_p.detach().cpu())
        return log_p.to(model_log_p.dtype)

    def best_weight(self, iterations: int = 300) -> tuple[float, float]:
        """The weight that minimises the mean loss of the pairs mixed so far (expectation-
        maximisation, which converges to the optimum of this convex problem), and that loss."""
        model, ppm = self.tokens()
        weight = 0.5
        for _ in range(iterations):
            share = torch.exp(math.log(weight) + model - mixed(model, ppm, weight))
            weight = float(share.mean().clamp(1e-6, 1 - 1e-6))
        # EM nears an optimum at 0 or 1 only slowly: the ends are candidates of their own.
        losses = {w: float(-mixed(model, ppm, w).mean()) for w in (weight, 0.0, 1.0)}
        return min(losses.items(), key=lambda item: item[1])


def mixed(model: torch.Tensor, ppm: torch.Tensor, weight) -> torch.Tensor:
    """log(weight x e^model + (1 - weight) x e^ppm), with weights 0 and 1 exact; `weight` a
    number or a tensor of one per token."""
    if torch.is_tensor(weight):
        return torch.logaddexp(model + torch.log(weight), ppm + torch.log1p(-weight))
    if weight == 1:
        return model
    if weight == 0:
        return ppm
    return torch.logaddexp(model + math.log(weight), ppm + math.log1p(-weight))


def at(log_p: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """log p of each target `Y` (rows, steps) in `log_p` (rows, steps, vocab)."""
    return log_p.gather(-1, Y.long().unsqueeze(-1)).squeeze(-1)

"""A PPM model's probabilities, token by token (Cleary and Witten, 1984: the longest context
seen, escaping with exclusion down to uniform; update exclusion; escapes estimated from similar
contexts, as in PPMd), and their mixture with a model's. pyppmd gives sizes, not probabilities."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from rnnlm.errors import UserError, require_count, require_number

# Secondary escape estimation: a rate starts as PPM-D's with the weight of PRIOR escapes and
# is halved when its count passes LIMIT, so it follows the text.
PRIOR, LIMIT = 8.0, 255.0


def ppm_read(
    ids: Sequence[int], vocab_size: int, order: int, full_from: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """log p(ids[t] | ids[:t]) for every t (float64, one read); for every t a bucket of what the
    PPM knows before ids[t] (0: no context seen, else 3 x the longest one's order + the distinct
    tokens after it, 1-3); with `full_from`, log p of every token at every t from there."""
    require_count("ppm_mixture.order", order, minimum=0)
    if any(not 0 <= i < vocab_size for i in ids):
        raise UserError(f"token ids must be in [0, {vocab_size}): the vocabulary's size")
    text = "".join(map(chr, ids))  # contexts are slices of a str: hashable and fast
    tables: dict[str, dict[str, int]] = {}
    rates: dict[tuple, list[float]] = {}
    out = torch.empty(len(text), dtype=torch.float64)
    known = torch.zeros(len(text), dtype=torch.int64)
    full = [] if full_from is not None else None
    for t, token in enumerate(text):
        top = min(order, t)
        depth = next((k for k in range(top, -1, -1) if text[t - k : t] in tables), -1)
        if depth >= 0:
            known[t] = 3 * depth + min(len(tables[text[t - depth : t]]), 3)
        if full is not None and t >= full_from:  # the same tables and rates, every token in turn
            full.append(
                [
                    probability(text, t, top, tables, rates, vocab_size, chr(v))[0]
                    for v in range(vocab_size)
                ]
            )
        p, found, escapes = probability(text, t, top, tables, rates, vocab_size)
        out[t] = math.log(p)
        for rate, escaped in escapes:  # the escape rates learn from what they just coded
            rate[0] += escaped
            rate[1] += 1
            if rate[1] > LIMIT:
                rate[0], rate[1] = rate[0] / 2, rate[1] / 2
        for k in range(max(found, 0), top + 1):  # update exclusion: the orders that coded it
            counts = tables.setdefault(text[t - k : t], {})
            counts[token] = counts.get(token, 0) + 1
    return out, known, None if full is None else torch.tensor(full, dtype=torch.float64).log()


def buckets(order: int) -> int:
    """The buckets of `ppm_read` for `order`."""
    return 3 * order + 4


def probability(text: str, t: int, top: int, tables, rates, vocab_size: int, asked=None):
    """p(text[t] | text[:t]) (or of `asked` there) from the contexts of orders `top` down to -1,
    with exclusions: the probability, the order that coded it (-1: none), the rates it used."""
    token, excluded = text[t] if asked is None else asked, set()
    p, escapes = 1.0, []
    for k in range(top, -1, -1):
        counts = tables.get(text[t - k : t])
        if counts is None:
            continue
        total = distinct = 0
        for other, count in counts.items():
            if other not in excluded:
                total, distinct = total + count, distinct + 1
        if distinct == 0:
            continue
        count = counts.get(token)
        if distinct + len(excluded) == vocab_size:  # every token offered: no escape
            return p * (count / total), k, escapes
        key = (k, min(distinct, 4), min(total.bit_length(), 7), bool(excluded))
        rate = rates.get(key) or [PRIOR * distinct / (2 * total), PRIOR]
        if asked is None:  # the token read learns; another token asked about leaves no trace
            rates[key] = rate
        escape = min(max(rate[0] / rate[1], 1e-4), 0.999)
        if count is not None and token not in excluded:
            escapes.append((rate, 0.0))
            return p * ((1 - escape) * count / total), k, escapes
        p *= escape
        escapes.append((rate, 1.0))
        excluded.update(counts)
    return p / (vocab_size - len(excluded)), -1, escapes  # order -1: uniform over the rest


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


class PPMMixture:
    """p = w p_model + (1 - w) p_PPM for each token of a part read as streams (`starts`);
    `log_probs`: the PPM's log p of every token of the text; `online`: w learned as it reads;
    `full` (`ppm_read`'s every token, from a position): p ~ p_model^w p_PPM^(1 - w) instead. The
    pairs are kept for `best_weight`."""

    def __init__(
        self,
        log_probs: torch.Tensor,
        weight: float,
        starts: torch.Tensor,
        order: int,
        online: OnlineWeights | None = None,
        full: tuple[torch.Tensor, int] | None = None,
    ) -> None:
        self.log_probs, self.weight, self.starts = log_probs, check_weight(weight), starts
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
            table, first = self.full
            both = self.weight * distributions.double() + (1 - self.weight) * table[
                offsets - first
            ].to(distributions.device)
            return at(torch.log_softmax(both, -1), Y).to(model_log_p.dtype)
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

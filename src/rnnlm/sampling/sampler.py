"""Choosing the next token: the book's argmax, or sampling (d2l.ai §9.5, exercises 4 and 4.1).

Sampling draws from softmax(logits / temperature), optionally restricted to the `top_k` most
likely tokens or to the smallest set whose probability reaches `top_p`. The book's sharpened
distribution q ∝ P^alpha is softmax(alpha * logits): temperature 1 / alpha.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rnnlm.errors import UserError, require_choice, require_count, require_number

STRATEGIES = ("greedy", "sample")


@dataclass(frozen=True)
class Sampler:
    strategy: str = "greedy"
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None

    @classmethod
    def from_options(
        cls,
        strategy: str = "greedy",
        temperature: float | None = None,
        alpha: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
    ) -> Sampler:
        """Validate user options; `alpha` (the book's exponent) becomes temperature 1/alpha."""
        require_choice("strategy", strategy, STRATEGIES)
        if alpha is not None and temperature is not None:
            raise UserError(f"give alpha={alpha} or temperature={temperature}, not both")
        if alpha is not None:
            temperature = 1.0 / require_number("alpha", alpha)
        temperature = require_number("temperature", 1.0 if temperature is None else temperature)
        if top_k is not None:
            require_count("top_k", top_k)
        if top_p is not None:
            require_number("top_p", top_p, "in (0, 1]")
        return cls(strategy, temperature, top_k, top_p)

    def __call__(self, logits: torch.Tensor, generator: torch.Generator | None = None):
        """(batch, vocab) logits -> (batch,) token indices."""
        if self.strategy == "greedy":
            return logits.argmax(dim=-1)
        scores = logits.float() / self.temperature
        if self.top_k is not None and self.top_k < scores.shape[-1]:
            kth = scores.topk(self.top_k, dim=-1).values[..., -1:]
            scores = scores.masked_fill(scores < kth, float("-inf"))
        if self.top_p is not None:
            sorted_scores, order = scores.sort(dim=-1, descending=True)
            sorted_probs = sorted_scores.softmax(dim=-1)
            # Drop a token when the tokens before it already reach top_p (keep at least one).
            drop_sorted = (sorted_probs.cumsum(dim=-1) - sorted_probs) >= self.top_p
            drop = drop_sorted.scatter(-1, order, drop_sorted)
            scores = scores.masked_fill(drop, float("-inf"))
        probs = scores.softmax(dim=-1)
        return torch.multinomial(probs, 1, generator=generator).squeeze(-1)

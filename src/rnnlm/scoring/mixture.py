"""A model's distribution mixed with PPM models' (`rnnlm.scoring.ppm`): the normalised product of
whole distributions, with fixed exponents or exponents learned as the text is read."""

from __future__ import annotations

import torch

from rnnlm.errors import require_number


class GeometricWeights:
    """p ~ p_model^w_0 x p_PPM_1^w_1 x ... normalised (several PPM orders in turn): the model's
    exponent starts at `start`, the orders share the rest. With `rate` > 0 every exponent takes a
    gradient step of `rate` on each token's log loss after it is scored (geometric mixing: the
    many-token form of context-mixing coders' logistic mixing), token by token in reading order,
    step by step across streams."""

    def __init__(self, inputs: int, start: float, rate: float = 0.0) -> None:
        why = " (the model's exponent; the PPM orders share the rest)"
        self.start = require_number("ppm_mixture.weight", start, "in [0, 1]", why)
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
    """p ~ p_model^w_0 x p_PPM_1^w_1 x ... for each token of a part read as streams (`starts`):
    `tables`, each order's log p of every token at every position from `first` (`ppm_read`);
    `weights`, the exponents. The model's own log p is kept for `model_loss`."""

    def __init__(
        self,
        tables: list[torch.Tensor],
        first: int,
        starts: torch.Tensor,
        order: list[int],
        weights: GeometricWeights,
    ) -> None:
        self.tables, self.first, self.starts = tables, first, starts
        self.order, self.weights = order, weights
        self.model_log_p: list[torch.Tensor] = []

    def model_loss(self) -> float:
        """The mean loss of the model alone over the tokens mixed so far."""
        return float(-torch.cat(self.model_log_p).mean())

    def use(self, starts: torch.Tensor) -> None:
        """Mix on a part read as other streams, from scratch (what was learned is dropped)."""
        self.starts, self.model_log_p = starts, []
        self.weights.reset()

    def mix(self, distributions: torch.Tensor, position: int, Y: torch.Tensor) -> torch.Tensor:
        """The mixture's log p of `Y` (rows, steps) from the model's log p of every token; target
        j of row r is token starts[r] + position + 1 + j."""
        offsets = self.starts.unsqueeze(1) + position + 1 + torch.arange(Y.shape[1])
        self.model_log_p.append(at(distributions, Y).detach().double().flatten().cpu())
        rows = [distributions.detach().double().cpu()]
        rows += [table[offsets - self.first] for table in self.tables]
        log_p = self.weights.mix(torch.stack(rows, -2), Y.cpu())
        return log_p.to(distributions.device, distributions.dtype)


def at(log_p: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """log p of each target `Y` (rows, steps) in `log_p` (rows, steps, vocab)."""
    return log_p.gather(-1, Y.long().unsqueeze(-1)).squeeze(-1)

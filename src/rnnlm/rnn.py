"""Recurrent cores: `RNNScratch` (d2l.ai §9.5) and `RNN` (§9.6), `forward(inputs, state=None) ->
(outputs, state)`: (num_steps, batch, num_inputs) floats or (num_steps, batch) indices (one-hot
rows) -> (num_steps, batch, num_hiddens)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from rnnlm.errors import require_choice, require_count, require_number

ACTIVATIONS = ("tanh", "relu")


def core(cls: type[nn.Module], **arguments: Any) -> dict[str, Any]:
    """A core's config as the models take it: `core(RNNScratch, num_hiddens=32)`; the benchmarks
    build with it."""
    return {"_target_": f"{cls.__module__}.{cls.__qualname__}", **arguments}


class RNNScratch(nn.Module):
    """H_t = phi(X_t W_xh + H_{t-1} W_hh + b_h), initialised as in the book; phi is tanh or ReLU
    (the book's last exercise). `forward` is the book's loop; `rnnlm.fast.FastRNNScratch` is
    faster."""

    gates = 1  # the products of W_hh per step (threads and memory estimates)

    def __init__(
        self, num_inputs: int, num_hiddens: int, sigma: float = 0.01, activation: str = "tanh"
    ) -> None:
        super().__init__()
        require_count("model.rnn.num_hiddens", num_hiddens)
        require_choice("model.rnn.activation", activation, ACTIVATIONS)
        self.num_inputs, self.num_hiddens, self.sigma = num_inputs, num_hiddens, sigma
        self.activation = activation
        self.W_xh = nn.Parameter(torch.randn(num_inputs, num_hiddens) * sigma)
        self.W_hh = nn.Parameter(torch.randn(num_hiddens, num_hiddens) * sigma)
        self.b_h = nn.Parameter(torch.zeros(num_hiddens))

    def forward(
        self, inputs: torch.Tensor, state: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not inputs.is_floating_point():  # token indices: the book's one-hot rows
            inputs = F.one_hot(inputs, self.num_inputs).float()
        if state is None:  # (batch_size, num_hiddens)
            state = torch.zeros((inputs.shape[1], self.num_hiddens), device=inputs.device)
        phi = torch.tanh if self.activation == "tanh" else torch.relu
        outputs = []
        for X in inputs:  # the book's loop: inputs is (num_steps, batch_size, num_inputs)
            state = phi(torch.matmul(X, self.W_xh) + torch.matmul(state, self.W_hh) + self.b_h)
            outputs.append(state)
        return torch.stack(outputs), state


class VariationalDropout(nn.Dropout):
    """Dropout of time-major (num_steps, batch, features) tensors with one mask per sequence,
    the same at every time step (Gal and Ghahramani, 2016), scaled by 1 / (1 - p)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        mask = torch.empty_like(x[:1]).bernoulli_(1 - self.p).div_(1 - self.p)
        return x * mask


class RNN(nn.Module):
    """The concise core (§9.6): `torch.nn.RNN`, `num_layers` stacked (`dropout` between them)."""

    cell = nn.RNN
    gates = 1  # the products of W_hh per step (threads and memory estimates)

    def __init__(
        self, num_inputs: int, num_hiddens: int, num_layers: int = 1, dropout: float = 0.0
    ) -> None:
        super().__init__()
        require_count("model.rnn.num_hiddens", num_hiddens)
        require_count("model.rnn.num_layers", num_layers)
        require_number("model.rnn.dropout", dropout, "in [0, 1)")
        self.num_inputs, self.num_hiddens = num_inputs, num_hiddens
        self.rnn = self.cell(num_inputs, num_hiddens, num_layers=num_layers, dropout=dropout)

    def forward(self, inputs: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        if not inputs.is_floating_point():
            inputs = F.one_hot(inputs, self.num_inputs).float()
        return self.rnn(inputs, state)

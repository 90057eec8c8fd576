"""The book's concise core (`rnnlm.rnn.RNN`) with DropConnect on its recurrence, and the gated
cores that share all of it but torch's module."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from rnnlm import rnn
from rnnlm.errors import require_number


class RNN(rnn.RNN):
    """`weight_drop` is DropConnect on the hidden-to-hidden matrices (Merity et al., 2017,
    AWD-LSTM): while training, each batch runs with a fresh dropout of the entries of every
    `weight_hh_l*`, the same dropped matrix at every time step, so the recurrence itself is
    regularised and torch's fused kernel still runs."""

    def __init__(
        self,
        num_inputs: int,
        num_hiddens: int,
        num_layers: int = 1,
        dropout: float = 0.0,
        weight_drop: float = 0.0,
    ) -> None:
        require_number("model.rnn.weight_drop", weight_drop, "in [0, 1)")
        super().__init__(num_inputs, num_hiddens, num_layers, dropout)
        self.weight_drop = weight_drop

    def forward(self, inputs: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        if not (self.training and self.weight_drop):
            return super().forward(inputs, state)
        if not inputs.is_floating_point():
            inputs = F.one_hot(inputs, self.num_inputs).float()
        dropped = {
            name: F.dropout(p, self.weight_drop)
            for name, p in self.rnn.named_parameters()
            if name.startswith("weight_hh")
        }
        return torch.func.functional_call(self.rnn, dropped, (inputs, state))


class GRU(RNN):
    cell = nn.GRU
    gates = 3


class LSTM(RNN):
    """The state is the tuple (H, C) that torch's LSTM returns."""

    cell = nn.LSTM
    gates = 4

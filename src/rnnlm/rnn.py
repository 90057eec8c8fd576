"""Recurrent cores: `RNNScratch` (d2l.ai §9.5, RNN from scratch) and `RNN` (§9.6, concise).

Both share one interface: `forward(inputs, state=None) -> (outputs, state)`, where `inputs` is
either `(num_steps, batch, num_inputs)` floats or `(num_steps, batch)` token indices that
stand for one-hot rows, and `outputs` is `(num_steps, batch, num_hiddens)`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.autograd.function import once_differentiable
from torch.nn import functional as F


class RNNScratch(nn.Module):
    """H_t = tanh(X_t W_xh + H_{t-1} W_hh + b_h), parameters initialised as in the book."""

    def __init__(self, num_inputs: int, num_hiddens: int, sigma: float = 0.01) -> None:
        super().__init__()
        self.num_inputs, self.num_hiddens, self.sigma = num_inputs, num_hiddens, sigma
        self.init_args: dict[str, Any] = dict(
            num_inputs=num_inputs, num_hiddens=num_hiddens, sigma=sigma
        )
        self.W_xh = nn.Parameter(torch.randn(num_inputs, num_hiddens) * sigma)
        self.W_hh = nn.Parameter(torch.randn(num_hiddens, num_hiddens) * sigma)
        self.b_h = nn.Parameter(torch.zeros(num_hiddens))

    def input_projection(self, inputs: torch.Tensor) -> torch.Tensor:
        """X_t W_xh + b_h for all steps at once: (num_steps, batch, num_hiddens).

        A one-hot row times W_xh is a row of W_xh, so token indices are a lookup into
        W_xh + b_h (exactly X_t W_xh + b_h) instead of a matmul with a one-hot tensor.
        """
        if inputs.is_floating_point():
            return torch.matmul(inputs, self.W_xh) + self.b_h
        rows = (self.W_xh + self.b_h).index_select(0, inputs.reshape(-1))
        return rows.view(*inputs.shape, self.num_hiddens)

    def forward(
        self, inputs: torch.Tensor, state: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = TanhRecurrence.apply(self.input_projection(inputs), self.W_hh, state)
        return outputs, outputs[-1]


class TanhRecurrence(torch.autograd.Function):
    """H_t = tanh(XW_t + H_{t-1} W_hh) over all steps, with backpropagation through time
    written out (d2l.ai §9.7), so autograd sees one node instead of ~5 per step and the
    W_hh gradient of all steps is one matmul. Only H_{t-1} W_hh stays inside the loop.
    """

    @staticmethod
    def forward(ctx, xw: torch.Tensor, W_hh: torch.Tensor, state: torch.Tensor | None):
        H = torch.empty_like(xw)  # (num_steps, batch, num_hiddens)
        h = state
        for t in range(xw.shape[0]):
            # No state means H_0 = 0: the first step has no H_{t-1} W_hh term.
            torch.tanh(xw[t] if h is None else torch.addmm(xw[t], h, W_hh), out=H[t])
            h = H[t]
        ctx.save_for_backward(H, W_hh, state)
        return H

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_H: torch.Tensor):
        H, W_hh, state = ctx.saved_tensors
        num_steps, num_hiddens = H.shape[0], H.shape[-1]
        d_act = torch.addcmul(torch.ones(()), H, H, value=-1)  # tanh'(Z_t) = 1 - H_t^2
        grad_Z = torch.empty_like(H)
        torch.mul(grad_H[-1], d_act[-1], out=grad_Z[-1])
        for t in range(num_steps - 2, -1, -1):
            # dL/dH_t = its direct gradient + dL/dZ_{t+1} W_hh^T
            torch.mul(torch.addmm(grad_H[t], grad_Z[t + 1], W_hh.T), d_act[t], out=grad_Z[t])
        # dL/dW_hh = sum_t H_{t-1}^T dL/dZ_t: one (num_hiddens, steps*batch) matmul.
        grad_W_hh = H[:-1].reshape(-1, num_hiddens).T @ grad_Z[1:].reshape(-1, num_hiddens)
        grad_state = None
        if state is not None:
            grad_W_hh = grad_W_hh.addmm_(state.T, grad_Z[0])
            grad_state = grad_Z[0] @ W_hh.T
        return grad_Z, grad_W_hh, grad_state


class RNN(nn.Module):
    """The concise core: `torch.nn.RNN` (tanh), state shaped (1, batch, num_hiddens)."""

    def __init__(self, num_inputs: int, num_hiddens: int) -> None:
        super().__init__()
        self.num_inputs, self.num_hiddens = num_inputs, num_hiddens
        self.init_args: dict[str, Any] = dict(num_inputs=num_inputs, num_hiddens=num_hiddens)
        self.rnn = nn.RNN(num_inputs, num_hiddens)

    def forward(
        self, inputs: torch.Tensor, state: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not inputs.is_floating_point():
            inputs = F.one_hot(inputs, self.num_inputs).float()
        return self.rnn(inputs, state)

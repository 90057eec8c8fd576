"""Recurrent cores: `RNNScratch` (d2l.ai §9.5, RNN from scratch) and `RNN` (§9.6, concise).

Both share one interface: `forward(inputs, state=None) -> (outputs, state)`, where `inputs` is
either `(num_steps, batch, num_inputs)` floats or `(num_steps, batch)` token indices that
stand for one-hot rows, and `outputs` is `(num_steps, batch, num_hiddens)`.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn
from torch.autograd.function import once_differentiable
from torch.nn import functional as F

from rnnlm.errors import UserError, require_count

ACTIVATIONS = ("tanh", "relu")


def core(cls: type[nn.Module], **arguments: Any) -> dict[str, Any]:
    """A core's config, as the language models take it: `core(RNNScratch, num_hiddens=32)` is
    `{"_target_": "rnnlm.rnn.RNNScratch", "num_hiddens": 32}` (the model sets `num_inputs`);
    the benchmarks build their models with it."""
    return {"_target_": f"{cls.__module__}.{cls.__qualname__}", **arguments}


class RNNScratch(nn.Module):
    """H_t = phi(X_t W_xh + H_{t-1} W_hh + b_h), parameters initialised as in the book.

    phi is tanh (the book) or ReLU (the book's last exercise: does ReLU still need clipping?).
    `forward` is the book's loop, step by step, differentiated by autograd; `fused=True` (the
    default) runs the same maths as `Recurrence`, one autograd node with backpropagation
    through time written out, which is faster (docs/performance.md; the tests check that
    outputs and gradients are equal).
    """

    gates = 1  # the products of W_hh per step (threads and memory estimates)

    def __init__(
        self,
        num_inputs: int,
        num_hiddens: int,
        sigma: float = 0.01,
        activation: str = "tanh",
        fused: bool = True,
    ) -> None:
        super().__init__()
        require_count("model.rnn.num_hiddens", num_hiddens)
        if activation not in ACTIVATIONS:
            raise UserError(f"activation={activation!r} is not allowed: use one of {ACTIVATIONS}")
        self.num_inputs, self.num_hiddens, self.sigma = num_inputs, num_hiddens, sigma
        self.activation, self.fused = activation, fused
        self.W_xh = nn.Parameter(torch.randn(num_inputs, num_hiddens) * sigma)
        self.W_hh = nn.Parameter(torch.randn(num_hiddens, num_hiddens) * sigma)
        self.b_h = nn.Parameter(torch.zeros(num_hiddens))

    def forward(
        self, inputs: torch.Tensor, state: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.fused:
            return self.fused_forward(inputs, state)
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

    def fused_forward(
        self, inputs: torch.Tensor, state: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The same maths: the input projection of all steps at once, then `Recurrence`."""
        outputs = Recurrence.apply(self.input_projection(inputs), self.W_hh, state, self.activation)
        return outputs, outputs[-1]

    def input_projection(self, inputs: torch.Tensor) -> torch.Tensor:
        """X_t W_xh + b_h for all steps at once: (num_steps, batch, num_hiddens).

        A one-hot row times W_xh is a row of W_xh, so token indices are a lookup into
        W_xh + b_h (exactly X_t W_xh + b_h) instead of a matmul with a one-hot tensor.
        """
        if inputs.is_floating_point():
            return torch.matmul(inputs, self.W_xh) + self.b_h
        rows = (self.W_xh + self.b_h).index_select(0, inputs.reshape(-1))
        return rows.view(*inputs.shape, self.num_hiddens)


class Recurrence(torch.autograd.Function):
    """H_t = phi(XW_t + H_{t-1} W_hh) over all steps, with backpropagation through time
    written out (d2l.ai §9.7), so autograd sees one node instead of ~5 per step and the
    W_hh gradient of all steps is one matmul. Only H_{t-1} W_hh stays inside the loop.
    """

    @staticmethod
    def forward(ctx, xw, W_hh, state, activation: str = "tanh"):
        phi = torch.tanh if activation == "tanh" else functools.partial(torch.clamp_min, min=0)
        H = torch.empty_like(xw)  # (num_steps, batch, num_hiddens)
        h = state
        # unbind: one op for all the per-step views (indexing H[t] is one op per step).
        for xw_t, H_t in zip(xw.unbind(0), H.unbind(0), strict=True):
            # No state means H_0 = 0: the first step has no H_{t-1} W_hh term.
            phi(xw_t if h is None else torch.addmm(xw_t, h, W_hh), out=H_t)
            h = H_t
        ctx.save_for_backward(H, W_hh, state)
        ctx.activation = activation
        return H

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_H: torch.Tensor):
        H, W_hh, state = ctx.saved_tensors
        num_hiddens, W_hh_T = H.shape[-1], W_hh.T
        grad_Z = torch.empty_like(H)  # dL/dZ_t, Z_t the pre-activation of step t
        if ctx.activation == "tanh":  # tanh'(Z_t) = 1 - H_t^2, per step while H_t is cached

            def times_derivative(g, H_t, out):
                torch.addcmul(g, g, torch.mul(H_t, H_t), value=-1, out=out)
        else:  # relu'(Z_t) = 1 where H_t > 0

            def times_derivative(g, H_t, out):
                torch.mul(g, H_t > 0, out=out)

        steps = list(zip(grad_H.unbind(0), H.unbind(0), grad_Z.unbind(0), strict=True))
        later = None  # dL/dZ_{t+1}
        for grad_H_t, H_t, grad_Z_t in reversed(steps):
            # dL/dH_t = its direct gradient + dL/dZ_{t+1} W_hh^T
            g = grad_H_t if later is None else torch.addmm(grad_H_t, later, W_hh_T)
            times_derivative(g, H_t, grad_Z_t)
            later = grad_Z_t
        # dL/dW_hh = sum_t H_{t-1}^T dL/dZ_t: one (num_hiddens, steps*batch) matmul.
        grad_W_hh = H[:-1].reshape(-1, num_hiddens).T @ grad_Z[1:].reshape(-1, num_hiddens)
        grad_state = None
        if state is not None:
            grad_W_hh = grad_W_hh.addmm_(state.T, grad_Z[0])
            grad_state = grad_Z[0] @ W_hh.T
        return grad_Z, grad_W_hh, grad_state, None


class VariationalDropout(nn.Dropout):
    """Dropout of time-major (num_steps, batch, features) tensors with one mask per sequence,
    the same at every time step (Gal and Ghahramani, 2016), scaled by 1 / (1 - p)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        mask = torch.empty_like(x[:1]).bernoulli_(1 - self.p).div_(1 - self.p)
        return x * mask


class RNN(nn.Module):
    """The concise core: `torch.nn.RNN` (tanh); GRU and LSTM below share everything but the
    torch module. `num_layers` stacks cells (`dropout` between them); the state is whatever
    the torch module returns, a tuple (H, C) for the LSTM.

    `weight_drop` is DropConnect on the hidden-to-hidden matrices (Merity et al., 2017,
    AWD-LSTM): while training, each batch runs with a fresh dropout of the entries of every
    `weight_hh_l*`, the same dropped matrix at every time step, so the recurrence itself is
    regularised and the torch module's fused kernel still runs.
    """

    cell = nn.RNN
    gates = 1  # the products of W_hh per step (threads and memory estimates)

    def __init__(
        self,
        num_inputs: int,
        num_hiddens: int,
        num_layers: int = 1,
        dropout: float = 0.0,
        weight_drop: float = 0.0,
    ) -> None:
        super().__init__()
        require_count("model.rnn.num_hiddens", num_hiddens)
        require_count("model.rnn.num_layers", num_layers)
        for name, p in (("dropout", dropout), ("weight_drop", weight_drop)):
            if not 0 <= p < 1:
                raise UserError(f"model.rnn.{name}={p!r} is not allowed: it must be in [0, 1)")
        self.num_inputs, self.num_hiddens, self.weight_drop = num_inputs, num_hiddens, weight_drop
        self.rnn = self.cell(num_inputs, num_hiddens, num_layers=num_layers, dropout=dropout)

    def forward(self, inputs: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        if not inputs.is_floating_point():
            inputs = F.one_hot(inputs, self.num_inputs).float()
        if not (self.training and self.weight_drop):
            return self.rnn(inputs, state)
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
    cell = nn.LSTM
    gates = 4

"""The book's scratch core, faster: the input projection of all steps at once, then `Recurrence`,
one autograd node with backpropagation through time written out (d2l.ai §9.7)."""

from __future__ import annotations

import functools

import torch
from torch.autograd.function import once_differentiable

from rnnlm.rnn import RNNScratch


class FastRNNScratch(RNNScratch):
    """`RNNScratch` with its loop in one autograd node (the tests check outputs and gradients
    against the book's loop)."""

    def forward(
        self, inputs: torch.Tensor, state: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = Recurrence.apply(self.input_projection(inputs), self.W_hh, state, self.activation)
        return outputs, outputs[-1]

    def input_projection(self, inputs: torch.Tensor) -> torch.Tensor:
        """X_t W_xh + b_h for all steps (num_steps, batch, num_hiddens): for token indices a row
        lookup into W_xh + b_h, which a one-hot row times W_xh is."""
        if inputs.is_floating_point():
            return torch.matmul(inputs, self.W_xh) + self.b_h
        rows = (self.W_xh + self.b_h).index_select(0, inputs.reshape(-1))
        return rows.view(*inputs.shape, self.num_hiddens)


class Recurrence(torch.autograd.Function):
    """H_t = phi(XW_t + H_{t-1} W_hh) over all steps, BPTT written out: one autograd node instead
    of ~5 a step, and the W_hh gradient of all steps one matmul."""

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

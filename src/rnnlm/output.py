"""The output layer and the cross-entropy loss of d2l.ai §9.5 in one autograd node.

The maths is the book's: logits O_t = H_t W_hq + b_q, loss = mean over tokens of
-log softmax(O_t)[y_t]. The engineering: logits are computed class-major, (vocab, tokens),
because with a vocabulary of 28 every reduction along the short axis of a (tokens, 28) tensor
is slow on a CPU (docs/performance.md measures the bias gradient in both layouts), and the
gradient is written out: softmax minus one-hot, over the count.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable


class OutputCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, H: torch.Tensor, W: torch.Tensor, b: torch.Tensor, Y: torch.Tensor):
        # H: (tokens, num_hiddens), W: (num_hiddens, vocab), b: (vocab,), Y: (tokens,) int64
        logits_t = torch.addmm(b.unsqueeze(1), W.T, H.T)  # (vocab, tokens)
        log_p = torch.log_softmax(logits_t, dim=0)
        targets = Y.unsqueeze(0)  # (1, tokens)
        ctx.save_for_backward(H, W, targets, log_p)
        return -log_p.gather(0, targets).mean()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss: torch.Tensor):
        H, W, targets, log_p = ctx.saved_tensors
        # d loss / d logits = (softmax - one_hot(y)) / tokens, class-major like the logits.
        G = log_p.exp()
        G.scatter_add_(0, targets, torch.full_like(targets, -1, dtype=G.dtype))
        G.mul_(grad_loss / targets.shape[1])
        grad_H = torch.mm(G.T, W.T)  # (tokens, num_hiddens)
        grad_W = torch.mm(G, H).T  # (num_hiddens, vocab)
        return grad_H, grad_W, G.sum(1), None


def output_cross_entropy(
    H: torch.Tensor, W: torch.Tensor, b: torch.Tensor, Y: torch.Tensor
) -> torch.Tensor:
    """Mean cross-entropy of the logits `H W + b` against `Y`, for any leading shape of
    `H` (..., num_hiddens) matched by `Y` (...)."""
    return OutputCrossEntropy.apply(H.reshape(-1, H.shape[-1]), W, b, Y.reshape(-1).long())

"""The output layer and cross-entropy of d2l.ai §9.5 (O_t = H_t W_hq + b_q; the mean of -log
softmax(O_t)[y_t]), class-major: reductions along the short axis of (tokens, 28) are slow on a
CPU (docs/performance.md); both gradients written out (softmax minus one-hot, one matmul each)."""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable


class ClassMajorLogits(torch.autograd.Function):
    @staticmethod
    def forward(ctx, H: torch.Tensor, W: torch.Tensor, b: torch.Tensor):
        # H: (tokens, num_hiddens), W: (num_hiddens, vocab), b: (vocab,)
        ctx.save_for_backward(H, W)
        return torch.addmm(b.unsqueeze(1), W.T, H.T)  # (vocab, tokens)

    @staticmethod
    @once_differentiable
    def backward(ctx, G: torch.Tensor):
        H, W = ctx.saved_tensors
        return torch.mm(G.T, W.T), torch.mm(G, H).T, G.sum(1)


class ClassMajorCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits_t: torch.Tensor, Y: torch.Tensor):
        # logits_t: (vocab, tokens), Y: (tokens,) int64
        log_p = torch.log_softmax(logits_t, dim=0)
        targets = Y.unsqueeze(0)  # (1, tokens)
        ctx.save_for_backward(targets, log_p)
        return -log_p.gather(0, targets).mean()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss: torch.Tensor):
        targets, log_p = ctx.saved_tensors
        # d loss / d logits = (softmax - one_hot(y)) / tokens, class-major like the logits.
        G = log_p.exp()
        G.scatter_add_(0, targets, torch.full_like(targets, -1, dtype=G.dtype))
        return G.mul_(grad_loss / targets.shape[1]), None


def class_major_logits(rnn_outputs: torch.Tensor, W: torch.Tensor, b: torch.Tensor):
    """(num_steps, batch, num_hiddens) -> logits (batch, num_steps, vocab), a view of the
    (vocab, num_steps * batch) tensor."""
    num_steps, batch, num_hiddens = rnn_outputs.shape
    logits_t = ClassMajorLogits.apply(rnn_outputs.reshape(-1, num_hiddens), W, b)
    return logits_t.view(-1, num_steps, batch).permute(2, 1, 0)


def class_major_cross_entropy(Y_hat: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """The mean cross-entropy of (batch, num_steps, vocab) logits, read time-major: the
    class-major tensor of `class_major_logits` itself, no copy."""
    logits_t = Y_hat.permute(2, 1, 0).reshape(Y_hat.shape[-1], -1)
    return ClassMajorCrossEntropy.apply(logits_t, Y.T.reshape(-1).long())

"""A faithful re-creation of d2l 1.0.3's run of §9.5 (RNN from scratch), the speed baseline.

What the book's code does, kept as it is: the corpus as a python list of token indices, every
window materialised (`torch.tensor([corpus[i:i+num_steps+1] ...])`), a TensorDataset +
DataLoader(shuffle=True) that collates 1024 samples per batch, one-hot inputs with a matmul per
step, outputs stacked from python lists, a hand-written global-norm `clip_gradients` (with a
host sync), and the per-step loss pulled to the host for the progress board (drawing off).

    python benchmarks/book_loop.py --data data/timemachine.txt [--model concise]
"""

from __future__ import annotations

import argparse
import collections
import math
import os
import re
import time

import torch
from torch import nn
from torch.nn import functional as F

BOOK = os.environ.get("RNNLM_TIMEMACHINE", "data/timemachine.txt")  # docs/development.md


class BookVocab:
    def __init__(self, tokens):
        counter = collections.Counter(tokens)
        freqs = sorted(counter.items(), key=lambda x: x[1], reverse=True)
        self.idx_to_token = sorted({"<unk>", *[token for token, _ in freqs]})
        self.token_to_idx = {token: idx for idx, token in enumerate(self.idx_to_token)}

    def __len__(self):
        return len(self.idx_to_token)

    def __getitem__(self, token):
        return self.token_to_idx.get(token, self.token_to_idx["<unk>"])


def book_data(path, batch_size=1024, num_steps=32, num_train=10000, num_val=5000):
    with open(path) as f:
        text = re.sub("[^A-Za-z]+", " ", f.read()).lower()
    tokens = list(text)
    vocab = BookVocab(tokens)
    corpus = [vocab[token] for token in tokens]
    array = torch.tensor([corpus[i : i + num_steps + 1] for i in range(len(corpus) - num_steps)])
    X, Y = array[:, :-1], array[:, 1:]

    def loader(train):
        idx = slice(0, num_train) if train else slice(num_train, num_train + num_val)
        dataset = torch.utils.data.TensorDataset(X[idx], Y[idx])
        return torch.utils.data.DataLoader(dataset, batch_size, shuffle=train)

    return vocab, loader


class BookRNNScratch(nn.Module):
    def __init__(self, num_inputs, num_hiddens, sigma=0.01):
        super().__init__()
        self.num_hiddens, self.sigma = num_hiddens, sigma
        self.W_xh = nn.Parameter(torch.randn(num_inputs, num_hiddens) * sigma)
        self.W_hh = nn.Parameter(torch.randn(num_hiddens, num_hiddens) * sigma)
        self.b_h = nn.Parameter(torch.zeros(num_hiddens))

    def forward(self, inputs, state=None):
        outputs = []
        for X in inputs:  # the chapter's loop: no state term on the first step
            state = torch.tanh(
                torch.matmul(X, self.W_xh)
                + (torch.matmul(state, self.W_hh) if state is not None else 0)
                + self.b_h
            )
            outputs.append(state)
        return outputs, state


class BookRNNLMScratch(nn.Module):
    def __init__(self, rnn, vocab_size):
        super().__init__()
        self.rnn, self.vocab_size = rnn, vocab_size
        self.init_params()

    def init_params(self):
        sigma = self.rnn.sigma
        self.W_hq = nn.Parameter(torch.randn(self.rnn.num_hiddens, self.vocab_size) * sigma)
        self.b_q = nn.Parameter(torch.zeros(self.vocab_size))

    def one_hot(self, X):
        return F.one_hot(X.T, self.vocab_size).type(torch.float32)

    def output_layer(self, rnn_outputs):
        outputs = [torch.matmul(H, self.W_hq) + self.b_q for H in rnn_outputs]
        return torch.stack(outputs, 1)

    def forward(self, X, state=None):
        rnn_outputs, _ = self.rnn(self.one_hot(X), state)
        return self.output_layer(rnn_outputs)

    def loss(self, Y_hat, Y):
        return F.cross_entropy(Y_hat.reshape((-1, Y_hat.shape[-1])), Y.reshape((-1,)))


class BookRNN(nn.Module):
    def __init__(self, num_inputs, num_hiddens):
        super().__init__()
        self.num_hiddens = num_hiddens
        self.rnn = nn.RNN(num_inputs, num_hiddens)

    def forward(self, inputs, H=None):
        return self.rnn(inputs, H)


class BookRNNLM(BookRNNLMScratch):
    def init_params(self):
        self.linear = nn.LazyLinear(self.vocab_size)

    def output_layer(self, hiddens):
        return self.linear(hiddens).swapaxes(0, 1)


def clip_gradients(grad_clip_val, model):
    params = [p for p in model.parameters() if p.requires_grad]
    norm = torch.sqrt(sum(torch.sum(p.grad**2) for p in params))
    if norm > grad_clip_val:
        for param in params:
            param.grad[:] *= grad_clip_val / norm


def train_epoch(model, loader, optim, gradient_clip_val=1.0, board=None, device="cpu"):
    """One pass over the training windows, as d2l's `Trainer.fit_epoch` does it."""
    model.train()
    for X, Y in loader(True):
        X, Y = X.to(device), Y.to(device)  # d2l's prepare_batch with num_gpus > 0
        loss = model.loss(model(X), Y)
        if board is not None:  # the book's ProgressBoard collects a host copy of every step
            board.append(torch.exp(loss).detach().numpy())
        optim.zero_grad()
        with torch.no_grad():
            loss.backward()
            clip_gradients(gradient_clip_val, model)
            optim.step()


def fit(model, loader, max_epochs=100, lr=1.0, gradient_clip_val=1.0):
    model(torch.zeros((1, 1), dtype=torch.long))  # materialise lazy layers, as d2l's prepare
    optim = torch.optim.SGD(model.parameters(), lr)
    board = []
    for _ in range(max_epochs):
        train_epoch(model, loader, optim, gradient_clip_val, board)
        model.eval()
        for X, Y in loader(False):
            with torch.no_grad():
                board.append(torch.exp(model.loss(model(X), Y)).numpy())


def val_ppl(model, loader):
    total, count = 0.0, 0
    with torch.no_grad():
        for X, Y in loader(False):
            total += model.loss(model(X), Y).item() * Y.numel()
            count += Y.numel()
    return math.exp(total / count)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        default=BOOK,
        help="the book (default: $RNNLM_TIMEMACHINE, else data/timemachine.txt)",
    )
    parser.add_argument("--model", choices=["scratch", "concise"], default="scratch")
    parser.add_argument("--epochs", type=int, default=100)
    args = parser.parse_args()
    start = time.perf_counter()
    vocab, loader = book_data(args.data)
    if args.model == "scratch":
        model = BookRNNLMScratch(BookRNNScratch(len(vocab), 32), len(vocab))
    else:
        model = BookRNNLM(BookRNN(len(vocab), 32), len(vocab))
    fit(model, loader, max_epochs=args.epochs)
    fit_s = time.perf_counter() - start
    print(
        f"book {args.model}: val/ppl {val_ppl(model, loader):.3f}, "
        f"{fit_s / args.epochs:.4f} s/epoch (data + fit {fit_s:.2f} s)"
    )


if __name__ == "__main__":
    main()

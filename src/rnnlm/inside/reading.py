"""A part of a text as a model reads it, one token after another from a zero state (one stream,
state carried): the surprisal of each token in bits, the model's top guesses before it, and
every hidden unit after it (`h` of every layer; for an LSTM, `c` too). Then the text's simple
features and the units that track them best (Pearson's r)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rnnlm.lm import RNNLMScratch

TOP = 5  # guesses shown for each position


@dataclass
class Reading:
    """`bits[t]`: -log2 p(token t | tokens before it), NaN for the first (read, not predicted);
    `top`, `top_p`: the `TOP` likeliest tokens at t and their probabilities; `states[t]`: every
    unit after reading token t, named by `units` as (layer, kind, index)."""

    bits: np.ndarray  # (T,) float64
    top: np.ndarray  # (T, TOP) vocabulary indices
    top_p: np.ndarray  # (T, TOP)
    states: np.ndarray  # (T, units) float32
    units: list[tuple[int, str, int]]


def state_layers(state) -> list[tuple[str, torch.Tensor]]:
    """A core's state for one row as (kind, (layers, num_hiddens)) pairs: the scratch core's H,
    torch's (layers, 1, hiddens), an LSTM's (H, C)."""
    kinds = ("h", "c") if isinstance(state, tuple) else ("h",)
    parts = state if isinstance(state, tuple) else (state,)
    return [(kind, s[:, 0] if s.dim() == 3 else s) for kind, s in zip(kinds, parts, strict=True)]


@torch.no_grad()
def read(model: RNNLMScratch, indices: torch.Tensor) -> Reading:
    """`indices` (T,) of `model`'s vocabulary read one at a time, as `RNNLMScratch.hidden` and
    `output_layer` compute them (the state kept after every token, which a whole-sequence call
    would not give for the lower layers and an LSTM's cells)."""
    model.eval()
    device = next(model.parameters()).device
    X = indices.to(device).view(-1, 1, 1)  # (T, steps=1, batch=1)
    outputs, states, state = [], [], None
    onednn = torch.backends.mkldnn.enabled
    # oneDNN's RNN kernels cost ~1 ms a call to set up, 9x the step itself (a 2-layer LSTM, 384)
    torch.backends.mkldnn.enabled = False
    try:
        for x in X:
            out, state = model.hidden(x, state)
            outputs.append(out)
            states.append(torch.cat([s.reshape(-1) for _, s in state_layers(state)]))
    finally:
        torch.backends.mkldnn.enabled = onednn
    units = [
        (layer + 1, kind, i)
        for kind, s in state_layers(state)
        for layer in range(s.shape[0])
        for i in range(s.shape[1])
    ]
    logits = model.output_layer(torch.cat(outputs))[0].float()  # (T, vocab)
    log_p = torch.log_softmax(logits, dim=-1)
    came = log_p[:-1].gather(1, X[1:, 0].long()).squeeze(1)  # token t + 1 given 0..t
    bits = torch.cat([torch.tensor([float("nan")], device=device), -came / np.log(2)])
    top_p, top = log_p.exp().topk(min(TOP, log_p.shape[1]), dim=-1)
    # Row t of top / top_p: the guesses for token t, made after token t - 1 (none for the first).
    pad = lambda a: torch.cat([torch.full_like(a[:1], -1), a[:-1]])  # noqa: E731
    return Reading(
        bits.double().cpu().numpy(),
        pad(top).cpu().numpy(),
        pad(top_p).cpu().numpy(),
        torch.stack(states).float().cpu().numpy(),
        units,
    )


def features(chars: list[str]) -> dict[str, np.ndarray]:
    """Simple features of a text, each the value after reading the character at t: inside
    quotes ("double", “curly”, or 'single': one before a letter opens, one that no space
    precedes and no letter follows closes), inside brackets, position in the word and in the
    line, just read a space."""
    names = ("inside quotes", "inside brackets", "position in word", "position in line")
    values = {name: np.zeros(len(chars)) for name in (*names, "just read a space")}
    quote = depth = word = line = 0
    for t, ch in enumerate(chars):
        before, after = chars[t - 1] if t else " ", chars[t + 1] if t + 1 < len(chars) else " "
        if ch == "'" and not before.isalnum() and after.isalpha():
            quote = 1
        elif ch == "'" and not before.isspace() and not after.isalpha():
            quote = 0
        else:
            quote = quote ^ (ch == '"') if ch not in "“”" else int(ch == "“")
        depth = max(0, depth + (ch in "([{") - (ch in ")]}"))
        word = word + 1 if ch.isalnum() or (ch == "'" and word) else 0
        line = 0 if ch == "\n" else line + 1
        for name, value in zip(names, (quote, depth > 0, word, line), strict=True):
            values[name][t] = value
        values["just read a space"][t] = ch == " "
    if "\n" not in chars:  # one line (the book's cleaning): a position in it is no feature
        values["position in line"][:] = 0
    return values


def feature_table(states: np.ndarray, chars: list[str]) -> tuple[dict, list[str]]:
    """Pearson's r of every unit (a column of `states`; 0 for a constant one) with each feature
    that varies in `chars`; the names of those that do not (nothing to correlate)."""
    x = states - states.mean(0)
    spread = np.sqrt((x * x).sum(0))
    table, constant = {}, []
    for name, feature in features(chars).items():
        if feature.min() == feature.max():
            constant.append(name)
            continue
        f = feature - feature.mean()
        norms = spread * np.sqrt((f * f).sum())
        table[name] = np.divide(f @ x, norms, out=np.zeros(x.shape[1]), where=norms > 0)
    return table, constant

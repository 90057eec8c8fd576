"""A model's continuations of a prefix: the book's warm-up (`RNNLMScratch.next_tokens`), then
one token a step chosen by a `Sampler`, for `num_samples` rows at once."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import torch

from rnnlm.errors import UserError, require_count
from rnnlm.lm import RNNLMScratch
from rnnlm.sampling.sampler import Sampler
from rnnlm.vocab import prefix_indices


def generate(
    model: RNNLMScratch, prefix: str, num_preds: int, sampler: Sampler | None = None, **options
) -> list[str]:
    """`num_samples` continuations of `prefix`, generated as one batch (`options`: those of
    `generate_tokens`); with the default greedy sampler, the book's `predict`."""
    generated = list(generate_tokens(model, prefix, num_preds, sampler, **options))
    empty = [[]] * options.get("num_samples", 1)  # num_preds=0
    rows = torch.stack(generated, 1).tolist() if generated else empty
    join = model.text_format.joiner
    return [prefix + join()(model.vocab.to_tokens(row), final=True) for row in rows]


def generate_tokens(
    model: RNNLMScratch,
    prefix: str,
    num_preds: int,
    sampler: Sampler | None = None,
    num_samples: int = 1,
    generator: torch.Generator | None = None,
) -> Iterator[torch.Tensor]:
    """The generation of `generate`, one (num_samples,) tensor of token indices a step, as
    they are made (to stream long outputs). Bad arguments are refused at the call."""
    if not prefix:
        raise UserError("prefix='' is not allowed: give at least one character")
    require_count("num_preds", num_preds, minimum=0)
    require_count("num_samples", num_samples)
    tokens = torch.tensor(
        prefix_indices(prefix, model.text_format, model.vocab), device=model.device
    )
    X = tokens.view(-1, 1).expand(-1, num_samples)  # (len(prefix), num_samples) indices
    sampler = sampler or Sampler()
    return model.next_tokens(X, num_preds, lambda logits: sampler(logits, generator))


STREAM_CHUNK = 200  # tokens printed at a time


def print_stream(model: RNNLMScratch, prefix: str, num_preds: int, sampler, generator) -> str:
    """One continuation of `prefix`, printed as it is generated, a chunk at a time; returned
    whole."""
    steps = generate_tokens(model, prefix, num_preds, sampler, 1, generator)
    joiner = model.text_format.joiner()
    pieces, chunk = [prefix], []
    print(prefix, end="", flush=True)
    for step in itertools.chain(steps, [None]):
        if step is not None:
            chunk.append(step)
        if step is None or len(chunk) == STREAM_CHUNK:
            tokens = model.vocab.to_tokens(torch.cat(chunk).tolist()) if chunk else []
            pieces.append(joiner(tokens, final=step is None))
            print(pieces[-1], end="", flush=True)
            chunk = []
    print()
    return "".join(pieces)

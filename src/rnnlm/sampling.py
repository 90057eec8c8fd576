"""Text from a language model (d2l.ai §9.5 `predict`): the book's warm-up on a prefix, then one
token a step, the book's argmax or sampled (exercises 4 and 4.1).

Sampling draws from softmax(logits / temperature), optionally restricted to the `top_k` most
likely tokens or to the smallest set whose probability reaches `top_p`. The book's sharpened
distribution q ∝ P^alpha is softmax(alpha * logits): temperature 1 / alpha.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from rnnlm.errors import UserError, require_count
from rnnlm.vocab import TextFormat, Vocab, refuse_unknown

STRATEGIES = ("greedy", "sample")


@dataclass(frozen=True)
class Sampler:
    strategy: str = "greedy"
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None

    @classmethod
    def from_options(
        cls,
        strategy: str = "greedy",
        temperature: float | None = None,
        alpha: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
    ) -> Sampler:
        """Validate user options; `alpha` (the book's exponent) becomes temperature 1/alpha."""
        if strategy not in STRATEGIES:
            raise UserError(f"strategy={strategy!r} is not allowed: use one of {STRATEGIES}")
        if alpha is not None and temperature is not None:
            raise UserError(f"give alpha={alpha} or temperature={temperature}, not both")
        if alpha is not None:
            if not alpha > 0:
                raise UserError(f"alpha={alpha} is not allowed: it must be > 0")
            temperature = 1.0 / alpha
        temperature = 1.0 if temperature is None else temperature
        if not temperature > 0:
            raise UserError(f"temperature={temperature} is not allowed: it must be > 0")
        if top_k is not None and (isinstance(top_k, bool) or not top_k >= 1):
            raise UserError(f"top_k={top_k} is not allowed: it must be an integer >= 1")
        if top_p is not None and not 0 < top_p <= 1:
            raise UserError(f"top_p={top_p} is not allowed: it must be in (0, 1]")
        return cls(strategy, float(temperature), top_k, top_p)

    def __call__(self, logits: torch.Tensor, generator: torch.Generator | None = None):
        """(batch, vocab) logits -> (batch,) token indices."""
        if self.strategy == "greedy":
            return logits.argmax(dim=-1)
        scores = logits.float() / self.temperature
        if self.top_k is not None and self.top_k < scores.shape[-1]:
            kth = scores.topk(self.top_k, dim=-1).values[..., -1:]
            scores = scores.masked_fill(scores < kth, float("-inf"))
        if self.top_p is not None:
            sorted_scores, order = scores.sort(dim=-1, descending=True)
            sorted_probs = sorted_scores.softmax(dim=-1)
            # Drop a token when the tokens before it already reach top_p (keep at least one).
            drop_sorted = (sorted_probs.cumsum(dim=-1) - sorted_probs) >= self.top_p
            drop = drop_sorted.scatter(-1, order, drop_sorted)
            scores = scores.masked_fill(drop, float("-inf"))
        probs = scores.softmax(dim=-1)
        return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


class Generation:
    """What a language model needs to write text: `vocab`, `text_format` (how its text was
    read), `hidden(X_time_major, state)` -> (outputs, state), `output_layer(outputs)` ->
    logits, and `device`. Mixed into the LightningModules of `rnnlm.lm`."""

    vocab: Vocab
    text_format: TextFormat
    device: torch.device

    def generate(
        self, prefix: str, num_preds: int, sampler: Sampler | None = None, **options
    ) -> list[str]:
        """`num_samples` continuations of `prefix`, generated as one batch (`options`: those of
        `generate_tokens`). The book's warm-up: the prefix only updates the state; predictions
        start after its last character. With the default greedy sampler this is `predict`."""
        generated = list(self.generate_tokens(prefix, num_preds, sampler, **options))
        rows = (
            torch.stack(generated, 1).tolist()
            if generated
            else [[]] * options.get("num_samples", 1)
        )
        joiner = self.text_format.joiner
        return [prefix + joiner()(self.vocab.to_tokens(row), final=True) for row in rows]

    def prefix_tokens(self, prefix: str) -> list[int]:
        """The indices of a (preprocessed) prefix's tokens; one line naming any the
        vocabulary does not hold."""
        tokens, kind = self.text_format.split(prefix), self.text_format.token_name
        if not tokens:
            raise UserError(f"prefix={prefix!r} holds no {kind}: give at least one")
        refuse_unknown(prefix, tokens, self.vocab.token_to_idx, kind)
        return self.vocab[tokens]

    def generate_tokens(
        self,
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
        tokens = torch.tensor(self.prefix_tokens(prefix), device=self.device)
        X = tokens.view(-1, 1).expand(-1, num_samples)  # (len(prefix), num_samples) indices
        return self._steps(X, num_preds, sampler or Sampler(), generator)

    @torch.no_grad()
    def _steps(self, X, num_preds: int, sampler: Sampler, generator) -> Iterator[torch.Tensor]:
        was_training = self.training
        self.eval()  # no dropout while generating
        try:
            state = self.hidden(X[:-1])[1] if len(X) > 1 else None  # warm-up: state only
            # The book's characters: the book's argmax over every token. Other texts write
            # text, never the <unk> placeholder of their rare tokens.
            last, unk = X[-1:], None if self.text_format == TextFormat() else self.vocab.unk
            for _ in range(num_preds):
                rnn_outputs, state = self.hidden(last, state)
                logits = self.output_layer(rnn_outputs)[:, -1]
                if unk is not None:
                    logits[:, unk] = float("-inf")
                choice = sampler(logits, generator)  # (samples,)
                yield choice
                last = choice.view(1, -1)
        finally:
            self.train(was_training)

    def predict(self, prefix: str, num_preds: int) -> str:
        """The book's prediction: warm up on `prefix`, then append `num_preds` argmax tokens."""
        return self.generate(prefix, num_preds)[0]

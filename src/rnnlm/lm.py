"""Language models: `RNNLMScratch` (d2l.ai §9.5) and `RNNLM` with an `nn.Linear` head (§9.6).

The LightningModule only trains: the recurrent maths lives in the core (`rnnlm.rnn`), gradient
clipping and devices belong to the Trainer, the gradient-norm logging and the divergence guard
are callbacks (`rnnlm.callbacks`) that every language model brings with it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from torch import nn
from torch.nn import functional as F
from torchmetrics import MeanMetric, MinMetric

from rnnlm.callbacks import DivergenceGuard, GradNorm
from rnnlm.data import Vocab
from rnnlm.errors import UserError, require_count, require_positive
from rnnlm.output import output_cross_entropy
from rnnlm.partials import check_buildable, optimizer_config, plain, scheduler_config
from rnnlm.sampling import Sampler


class VariationalDropout(nn.Dropout):
    """Dropout of time-major (num_steps, batch, features) tensors with one mask per sequence,
    the same at every time step (Gal and Ghahramani, 2016), scaled by 1 / (1 - p)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        mask = torch.empty_like(x[:1]).bernoulli_(1 - self.p).div_(1 - self.p)
        return x * mask


class RNNLMScratch(pl.LightningModule):
    """One-hot inputs -> recurrent core -> output layer (W_hq, b_q); cross-entropy; SGD(lr).

    `rnn` is the core's config (a `_target_` mapping, e.g. `rnnlm.rnn.core(RNNScratch,
    num_hiddens=32)`): the LM builds the core and sets its input size itself (the vocabulary's
    size for one-hot inputs, or the embedding's); `vocab` (the list of tokens) makes the
    checkpoint self-contained. The constructor's arguments are the checkpoint's
    hyperparameters, so a checkpoint rebuilds the model from them alone. Beyond the book (its
    exercises, and regularisation): `embedding=E` feeds a learnable E-dim embedding instead of
    one-hot vectors, `dropout` acts on the non-recurrent connections (Zaremba et al., 2014):
    the core's outputs, and its embedded inputs; `optimizer` and `lr_scheduler` are partial
    configs of any torch.optim class and torch.optim.lr_scheduler class, completed in
    `configure_optimizers`, the scheduler stepped every epoch (`ReduceLROnPlateau` watches
    `val/ppl`); `variational_dropout` keeps one dropout mask per sequence for all its time
    steps (Gal and Ghahramani, 2016); `compile` runs the batches through `torch.compile`.
    """

    def __init__(
        self,
        rnn: Mapping[str, Any],
        vocab_size: int,
        lr: float = 0.01,
        vocab: Sequence[str] | None = None,
        embedding: int | None = None,
        dropout: float = 0.0,
        optimizer: str | Mapping[str, Any] = "sgd",
        weight_decay: float = 0.0,
        lr_scheduler: Mapping[str, Any] | None = None,
        variational_dropout: bool = False,
        compile: bool = False,
    ) -> None:
        super().__init__()
        require_positive("model.lr", lr)
        if not 0 <= dropout < 1:
            raise UserError(f"model.dropout={dropout!r} is not allowed: it must be in [0, 1)")
        if not isinstance(rnn, Mapping):
            raise TypeError("rnn is the core's config (a _target_ mapping): see rnnlm.rnn.core")
        # Plain containers (interpolations resolved): what the checkpoint keeps.
        optimizer = optimizer_config(optimizer, weight_decay)
        check_buildable("model.optimizer", optimizer)
        lr_scheduler = scheduler_config(lr_scheduler)
        if lr_scheduler is not None:
            check_buildable("model.lr_scheduler", lr_scheduler)
        vocab = list(vocab) if vocab is not None else None
        if vocab is not None and len(vocab) != vocab_size:
            raise UserError(f"vocab has {len(vocab)} tokens but vocab_size={vocab_size}")
        rnn = plain(rnn)
        num_inputs = embedding or vocab_size  # what the core reads: one-hot rows or embeddings
        given = rnn.pop("num_inputs", num_inputs)  # older checkpoints name it
        if given != num_inputs:
            raise UserError(
                f"model.rnn.num_inputs={given} is not what this model feeds its core "
                f"({num_inputs}: the embedding's size, else the vocabulary's): leave it out"
            )
        self.save_hyperparameters()
        self.rnn = instantiate({**rnn, "num_inputs": num_inputs})
        self.vocab_size, self.lr = vocab_size, lr
        self.vocab = Vocab.from_tokens(vocab) if vocab is not None else None
        self.embedding = nn.Embedding(vocab_size, embedding) if embedding else None
        drop = VariationalDropout if variational_dropout else nn.Dropout
        self.dropout = drop(dropout) if dropout else None
        self.init_params()
        # The best val/ppl so far (the same on every rank: no sync), carried across a resume.
        self.val_ppl_best = MinMetric(sync_on_compute=False)
        # Sums of token losses and token counts over an epoch: ppl = exp(sum / count).
        self.train_loss, self.val_loss = MeanMetric(), MeanMetric()
        self.val_tokens = 0  # tokens scored by this rank in the current validation epoch
        self.carried: dict[str, Any] = {}  # split -> the state its streams carry on with

    def init_params(self) -> None:
        sigma = getattr(self.rnn, "sigma", 0.01)
        self.W_hq = nn.Parameter(torch.randn(self.rnn.num_hiddens, self.vocab_size) * sigma)
        self.b_q = nn.Parameter(torch.zeros(self.vocab_size))

    def one_hot(self, X: torch.Tensor) -> torch.Tensor:
        """(batch, num_steps) indices -> (num_steps, batch, vocab_size) one-hot floats."""
        return F.one_hot(X.T, self.vocab_size).type(torch.float32)

    def output_params(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The output layer as (W_hq (num_hiddens, vocab_size), b_q)."""
        return self.W_hq, self.b_q

    def output_layer(self, rnn_outputs: torch.Tensor) -> torch.Tensor:
        """(num_steps, batch, num_hiddens) -> logits (batch, num_steps, vocab_size)."""
        # Computed time-major (no copy of the core's output), returned as a (batch, ...) view.
        num_steps, batch, num_hiddens = rnn_outputs.shape
        W, b = self.output_params()
        flat = torch.addmm(b, rnn_outputs.reshape(-1, num_hiddens), W)
        return flat.view(num_steps, batch, -1).transpose(0, 1)

    def inputs(self, X_time_major: torch.Tensor) -> torch.Tensor:
        """What the core reads: (num_steps, batch) indices, which the cores treat as one-hot
        rows (the same numbers as `self.one_hot(X)`, without building it), or embeddings.
        Batches arrive as uint8 (a quarter of the bytes to copy to a GPU): widened here."""
        X_time_major = X_time_major.long()
        if self.embedding is None:
            return X_time_major
        embedded = self.embedding(X_time_major)
        return embedded if self.dropout is None else self.dropout(embedded)

    def hidden(self, X_time_major: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """Time-major indices -> (the core's outputs, after dropout; the new state)."""
        rnn_outputs, state = self.rnn(self.inputs(X_time_major), state)
        if self.dropout is not None:
            rnn_outputs = self.dropout(rnn_outputs)
        return rnn_outputs, state

    def forward(self, X: torch.Tensor, state: Any = None) -> torch.Tensor:
        return self.output_layer(self.hidden(X.T, state)[0])

    def loss(self, Y_hat: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over all tokens. The mean does not depend on token order, so
        both are flattened time-major: a view of the logits, which the heads make time-major."""
        V = Y_hat.shape[-1]
        return F.cross_entropy(Y_hat.transpose(0, 1).reshape(-1, V), Y.T.reshape(-1).long())

    def batch_loss(
        self, X: torch.Tensor, Y: torch.Tensor, state: Any = None
    ) -> tuple[torch.Tensor, Any]:
        """`self.loss(self(X, state), Y)` and the core's last state, computed with the output
        layer and the cross-entropy in one node (`rnnlm.output`): the same numbers, half the
        time on a CPU.

        With `compile=True` this goes through `torch.compile` once `setup` has
        built it (in the process that trains); elsewhere (scoring a checkpoint) it runs eagerly.
        """
        compiled = self.__dict__.get("compiled_batch_loss")
        return (compiled or self.eager_batch_loss)(X, Y, state)

    def setup(self, stage: str) -> None:
        """With `compile=True`: `torch.compile` the batch loss, with dynamic shapes (an epoch's
        last batch is smaller). Lightning calls this in the process that trains, after the
        callbacks' setup, so DDP spawn still pickles, and weight averaging still copies, a
        plain module (`configure_model` would do the same, but weight averaging warns about
        models that override it)."""
        if self.hparams.get("compile") and "compiled_batch_loss" not in self.__dict__:
            self.__dict__["compiled_batch_loss"] = torch.compile(
                self.eager_batch_loss, dynamic=True
            )

    def eager_batch_loss(
        self, X: torch.Tensor, Y: torch.Tensor, state: Any = None
    ) -> tuple[torch.Tensor, Any]:
        rnn_outputs, state = self.hidden(X.T, state)  # (num_steps, batch, num_hiddens)
        return output_cross_entropy(rnn_outputs, *self.output_params(), Y.T), state

    def step_loss(self, batch: tuple, split: str) -> torch.Tensor:
        """The mean loss of a batch: windows `(X, Y)` start from a zero state; streamed
        batches `(X, Y, reset)` (`rnnlm.streams`) start from the state that the previous batch
        of the same streams left, detached so that gradients stop at the batch boundary
        (truncated backpropagation through time), or from zero when `reset`."""
        X, Y, *streamed = batch
        state = self.carried.pop(split, None) if streamed and not streamed[0] else None
        loss, state = self.batch_loss(X, Y, state)
        if streamed:
            self.carried[split] = detach_state(state)
        return loss

    def training_step(self, batch: tuple, batch_idx: int) -> torch.Tensor:
        loss = self.step_loss(batch, "train")
        self.train_loss.update(loss.detach(), batch[1].numel())
        return loss

    def validation_step(self, batch: tuple, batch_idx: int) -> None:
        Y = batch[1]
        self.val_loss.update(self.step_loss(batch, "val"), Y.numel())
        self.val_tokens += Y.numel()

    def log_epoch(self, split: str, metric: MeanMetric) -> torch.Tensor:
        loss = metric.compute()  # token-weighted mean cross-entropy (synced across ranks)
        metric.reset()
        # Epoch values are the same on every rank already: sync_dist averages equal numbers.
        self.log(f"{split}/loss", loss, sync_dist=True)
        self.log(f"{split}/ppl", torch.exp(loss), prog_bar=True, sync_dist=True)
        return torch.exp(loss)

    def on_validation_epoch_start(self) -> None:
        self.carried.pop("val", None)

    def on_train_epoch_start(self) -> None:
        self.carried.clear()  # every epoch starts its streams from a zero state
        # The rate this epoch trains with (an epoch-interval scheduler steps before
        # on_train_epoch_end, so reading it there would give the next epoch's).
        self.epoch_lr = self.trainer.optimizers[0].param_groups[0]["lr"]

    def on_train_epoch_end(self) -> None:
        self.log_epoch("train", self.train_loss)
        self.log("train/lr", self.epoch_lr, sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        ppl = self.log_epoch("val", self.val_loss)
        # Tokens scored over all ranks: equals num_val * num_steps when no window is repeated.
        tokens = self.all_gather(torch.tensor(self.val_tokens, device=self.device)).sum()
        self.log("val/tokens", tokens.float(), sync_dist=True)
        self.val_tokens = 0
        if not self.trainer.sanity_checking and torch.isfinite(ppl):
            self.val_ppl_best.update(ppl)
            self.log("val/ppl_best", self.val_ppl_best.compute(), sync_dist=True)

    @property
    def best_val_ppl(self) -> float:
        """The best val/ppl of the run so far (inf before the first validation epoch)."""
        return float(self.val_ppl_best.compute()) if self.val_ppl_best.update_count else math.inf

    def configure_callbacks(self) -> list[pl.Callback]:
        """What every run of a language model watches, whatever the config's callbacks: the
        gradient norm before clipping, and divergence."""
        return [GradNorm(), DivergenceGuard()]

    def configure_optimizers(self) -> Any:
        # The configs are partials: completed here with the parameters, the rate, the optimizer.
        optimizer = instantiate(self.hparams.optimizer)(self.parameters(), lr=self.lr)
        if self.hparams.get("lr_scheduler") is None:
            return optimizer
        # Stepped once per epoch, after validation; ReduceLROnPlateau watches val/ppl.
        scheduler = instantiate(self.hparams.lr_scheduler)(optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch", "monitor": "val/ppl"},
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Which class to rebuild: `load_lm` needs only the checkpoint file.
        checkpoint["rnnlm_class"] = f"{type(self).__module__}.{type(self).__qualname__}"
        checkpoint["rnnlm_best_val_ppl"] = self.best_val_ppl  # a resumed run carries it on

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        best = checkpoint.get("rnnlm_best_val_ppl", math.inf)
        if math.isfinite(best):
            self.val_ppl_best.update(torch.tensor(best, device=self.device))

    def generate(
        self,
        prefix: str,
        num_preds: int,
        sampler: Sampler | None = None,
        num_samples: int = 1,
        generator: torch.Generator | None = None,
        vocab: Vocab | None = None,
    ) -> list[str]:
        """`num_samples` continuations of `prefix`, generated as one batch.

        The book's warm-up: the prefix only updates the state; predictions start after its
        last character. With the default greedy sampler this is the book's `predict`.
        """
        steps = self.generate_tokens(prefix, num_preds, sampler, num_samples, generator, vocab)
        generated = list(steps)
        rows = torch.stack(generated, 1).tolist() if generated else [[]] * num_samples
        vocab = vocab or self.vocab
        return [prefix + "".join(vocab.idx_to_token[i] for i in row) for row in rows]

    def generate_tokens(
        self,
        prefix: str,
        num_preds: int,
        sampler: Sampler | None = None,
        num_samples: int = 1,
        generator: torch.Generator | None = None,
        vocab: Vocab | None = None,
    ) -> Iterator[torch.Tensor]:
        """The generation of `generate`, one (num_samples,) tensor of token indices a step, as
        they are made (to stream long outputs). Bad arguments are refused at the call."""
        vocab = vocab or self.vocab
        if vocab is None:
            raise UserError("generation needs a vocabulary: pass vocab= or train with one")
        if not prefix:
            raise UserError("prefix='' is not allowed: give at least one character")
        require_count("num_preds", num_preds, minimum=0)
        require_count("num_samples", num_samples)
        tokens = torch.tensor(vocab[list(prefix)], device=self.device)
        X = tokens.view(-1, 1).expand(-1, num_samples)  # (len(prefix), num_samples) indices
        return self._steps(X, num_preds, sampler or Sampler(), generator)

    @torch.no_grad()
    def _steps(self, X, num_preds: int, sampler: Sampler, generator) -> Iterator[torch.Tensor]:
        was_training = self.training
        self.eval()  # no dropout while generating
        try:
            state = self.hidden(X[:-1])[1] if len(X) > 1 else None  # warm-up: state only
            last = X[-1:]
            for _ in range(num_preds):
                rnn_outputs, state = self.hidden(last, state)
                choice = sampler(self.output_layer(rnn_outputs)[:, -1], generator)  # (samples,)
                yield choice
                last = choice.view(1, -1)
        finally:
            self.train(was_training)

    def predict(self, prefix: str, num_preds: int, vocab: Vocab | None = None) -> str:
        """The book's prediction: warm up on `prefix`, then append `num_preds` argmax tokens."""
        return self.generate(prefix, num_preds, vocab=vocab)[0]


class RNNLM(RNNLMScratch):
    """The concise LM: the same training, an `nn.Linear` output layer (not lazy: DDP-safe)."""

    def init_params(self) -> None:
        self.linear = nn.Linear(self.rnn.num_hiddens, self.vocab_size)

    def output_params(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.linear.weight.T, self.linear.bias


def detach_state(state: Any) -> Any:
    """A state (a tensor, or a tuple of them for the LSTM) cut from the graph that made it."""
    if isinstance(state, torch.Tensor):
        return state.detach()
    return tuple(detach_state(s) for s in state)


@torch.no_grad()
def score(model: RNNLMScratch, loader: Iterable[tuple]) -> tuple[float, int]:
    """Token-weighted mean cross-entropy of `model` over every batch of `loader`, and the
    number of tokens scored; streamed batches carry the state through their streams, so each
    character is scored once with all that precedes it in its stream."""
    was_training = model.training
    model.eval()
    total, tokens = 0.0, 0
    for batch in loader:
        batch = tuple(b.to(model.device) if torch.is_tensor(b) else b for b in batch)
        total += float(model.step_loss(batch, "score")) * batch[1].numel()
        tokens += batch[1].numel()
    model.carried.pop("score", None)
    model.train(was_training)
    if tokens == 0:
        raise UserError("nothing to score: the data has no batches")
    return total / tokens, tokens

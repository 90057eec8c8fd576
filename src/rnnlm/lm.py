"""Language models: `RNNLMScratch` (d2l.ai §9.5) and `RNNLM` with an `nn.Linear` head (§9.6); the
recurrence is the core's (`rnnlm.rnn`), clipping and devices the Trainer's."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from torch import nn
from torch.nn import functional as F
from torchmetrics import MinMetric

from rnnlm import metrics
from rnnlm.callbacks import DivergenceGuard, GradNorm
from rnnlm.carry import CarriedStates
from rnnlm.errors import UserError, require_count, require_number
from rnnlm.metrics import SplitFigures, own_metric_states
from rnnlm.partials import SGD, core_config, optimizers, partial_config
from rnnlm.rnn import VariationalDropout
from rnnlm.vocab import TextFormat, Vocab, prefix_indices


class RNNLMScratch(pl.LightningModule):
    """One-hot inputs -> recurrent core -> output layer (W_hq, b_q); cross-entropy; SGD(lr).

    `rnn` is the core's config (`{"_target_": "rnnlm.rnn.RNNScratch", "num_hiddens": 32}`);
    `vocab` and `text` (`TextFormat`) make a checkpoint self-contained. Beyond the book:
    `embedding`, `dropout` (`variational_dropout`: a mask a sequence), `optimizer` and
    `lr_scheduler` as partial configs."""

    monitor = "val/ppl"  # what selects checkpoints and what a sweep optimises

    def __init__(
        self,
        rnn: Mapping[str, Any],
        vocab: Sequence[str],
        lr: float = 1.0,
        embedding: int | None = None,
        dropout: float = 0.0,
        optimizer: Mapping[str, Any] = SGD,
        lr_scheduler: Mapping[str, Any] | None = None,
        variational_dropout: bool = False,
        text: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        require_number("model.lr", lr)
        require_number("model.dropout", dropout, "in [0, 1)")
        # What the checkpoint keeps (plain containers; a bad _target_ fails now), given as a
        # dict: read from the call stack, a subclass's own arguments would come unchecked.
        scheduler = (
            None if lr_scheduler is None else partial_config("model.lr_scheduler", lr_scheduler)
        )
        self.save_hyperparameters(
            dict(
                rnn=core_config(rnn), vocab=list(vocab), lr=lr, embedding=embedding, dropout=dropout
            )
            | dict(optimizer=partial_config("model.optimizer", optimizer), lr_scheduler=scheduler)
            | dict(variational_dropout=variational_dropout, text=TextFormat.of(text).as_dict())
        )
        self.vocab, self.text_format = Vocab.from_tokens(vocab), TextFormat.of(text)
        self.vocab_size, self.lr = len(vocab), lr
        num_inputs = embedding or self.vocab_size  # what the core reads: one-hot rows or embeddings
        self.rnn = instantiate({**self.hparams.rnn, "num_inputs": num_inputs})
        self.embedding = nn.Embedding(self.vocab_size, embedding) if embedding else None
        drop = VariationalDropout if variational_dropout else nn.Dropout
        self.dropout = drop(dropout) if dropout else None
        self.init_params()
        self.figures = SplitFigures()
        self.val_ppl_best = MinMetric(sync_on_compute=False)  # the same on every rank: no sync
        self.val_ppl_best.persistent(True)
        self.carried = CarriedStates()  # split -> the state its streams carry on with
        self.last_state: Any = None  # the core's state after the last forward

    def init_params(self) -> None:
        sigma = getattr(self.rnn, "sigma", 0.01)
        self.W_hq = nn.Parameter(torch.randn(self.rnn.num_hiddens, self.vocab_size) * sigma)
        self.b_q = nn.Parameter(torch.zeros(self.vocab_size))

    def one_hot(self, X: torch.Tensor) -> torch.Tensor:
        """(batch, num_steps) indices -> (num_steps, batch, vocab_size) one-hot floats."""
        return F.one_hot(X.T.long(), self.vocab_size).type(torch.float32)

    def output_params(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The output layer as (W_hq (num_hiddens, vocab_size), b_q)."""
        return self.W_hq, self.b_q

    def output_layer(self, rnn_outputs: torch.Tensor) -> torch.Tensor:
        """(num_steps, batch, num_hiddens) -> logits (batch, num_steps, vocab_size)."""
        W, b = self.output_params()
        return (torch.matmul(rnn_outputs, W) + b).transpose(0, 1)

    def input_vectors(self) -> torch.Tensor:
        """(vocab_size, dim): what each token feeds the core: its embedding, or the row of the
        input weights its one-hot vector picks (`W_xh`'s; torch's cores store them transposed)."""
        if self.embedding is not None:
            return self.embedding.weight
        core = self.rnn
        return core.W_xh if hasattr(core, "W_xh") else core.rnn.weight_ih_l0.T

    def inputs(self, X_time_major: torch.Tensor) -> torch.Tensor:
        """What the core reads: one-hot rows (the book) or, with `embedding`, embeddings."""
        if self.embedding is None:
            return self.one_hot(X_time_major.T)
        # Batches arrive as uint8 (a quarter of the bytes to copy to a GPU): widened here.
        embedded = self.embedding(X_time_major.long())
        return embedded if self.dropout is None else self.dropout(embedded)

    def hidden(self, X_time_major: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """(num_steps, batch) indices -> (the core's outputs, after dropout; its last state)."""
        rnn_outputs, state = self.rnn(self.inputs(X_time_major), state)
        if self.dropout is not None:
            rnn_outputs = self.dropout(rnn_outputs)
        return rnn_outputs, state

    def forward(self, X: torch.Tensor, state: Any = None) -> torch.Tensor:
        """(batch, num_steps) indices -> logits (batch, num_steps, vocab_size); the core's last
        state is kept as `self.last_state` (where a stream's next batch starts)."""
        rnn_outputs, self.last_state = self.hidden(X.T, state)
        return self.output_layer(rnn_outputs)

    def loss(self, Y_hat: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over all tokens."""
        return F.cross_entropy(Y_hat.reshape(-1, Y_hat.shape[-1]), Y.reshape(-1).long())

    def batch_loss(
        self, X: torch.Tensor, Y: torch.Tensor, state: Any = None
    ) -> tuple[torch.Tensor, Any]:
        """`self.loss(self(X, state), Y)` and the core's last state."""
        return self.loss(self(X, state), Y), self.last_state

    @torch.no_grad()
    def next_tokens(
        self, X: torch.Tensor, num_preds: int, choose: Callable[[torch.Tensor], torch.Tensor]
    ) -> Iterator[torch.Tensor]:
        """The book's warm-up on the (len(prefix), rows) indices `X` (state only), then
        `num_preds` tokens a row, each chosen from the logits by `choose`."""
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
                choice = choose(logits)  # (rows,)
                yield choice
                last = choice.view(1, -1)
        finally:
            self.train(was_training)

    def predict(self, prefix: str, num_preds: int) -> str:
        """The book's prediction: warm up on `prefix`, then append `num_preds` argmax tokens."""
        if not prefix:
            raise UserError("prefix='' is not allowed: give at least one character")
        require_count("num_preds", num_preds, minimum=0)
        X = torch.tensor(prefix_indices(prefix, self.text_format, self.vocab), device=self.device)
        X = X.view(-1, 1)
        tokens = [int(t) for t in self.next_tokens(X, num_preds, lambda o: o.argmax(dim=-1))]
        return prefix + self.text_format.joiner()(self.vocab.to_tokens(tokens), final=True)

    def setup(self, stage: str) -> None:
        own_metric_states(self)  # in every process of a run (ddp_spawn: rnnlm.metrics)

    def scored_step(self, batch: tuple, batch_idx: int, split: str) -> torch.Tensor:
        """A batch's mean loss, added to the split's figures: windows `(X, Y)` from a zero state,
        streams `(X, Y, position)` from the state the last batch left."""
        X, Y, *position = batch
        loss, state = self.batch_loss(X, Y, self.carried.take(split, position))
        self.carried.keep(split, position, X.shape[1], state)
        self.figures.update(split, loss, Y.numel())
        if batch_idx == 0:
            self.figures.log(self, split)
        return loss

    def training_step(self, batch: tuple, batch_idx: int) -> torch.Tensor:
        return self.scored_step(batch, batch_idx, "train")

    def validation_step(self, batch: tuple, batch_idx: int) -> None:
        self.scored_step(batch, batch_idx, "val")

    def test_step(self, batch: tuple, batch_idx: int) -> None:
        self.scored_step(batch, batch_idx, "test")

    def on_train_epoch_start(self) -> None:  # the rate now: a scheduler steps before the end
        self.epoch_lr = self.trainer.optimizers[0].param_groups[0]["lr"]

    def on_train_epoch_end(self) -> None:
        self.log("train/lr", self.epoch_lr, sync_dist=True)  # sync_dist: no warning, same value

    def on_validation_epoch_end(self) -> None:
        ppl = self.figures.ppl("val")  # synced once; Lightning's compute reuses the result
        if not self.trainer.sanity_checking and torch.isfinite(ppl):
            self.val_ppl_best.update(ppl)
            self.log("val/ppl_best", self.val_ppl_best.compute(), sync_dist=True)
        self.log_bits_per_char("val")

    def on_test_epoch_end(self) -> None:
        self.log_bits_per_char("test")

    def log_bits_per_char(self, split: str) -> None:
        """Word and byte models: `<split>/bits_per_char` (the data module counts the characters
        per token)."""
        per_token = getattr(self.trainer.datamodule, "characters_per_token", None)
        ratio = per_token(split) if per_token is not None else None
        if ratio is not None:
            bits = torch.log2(self.figures.ppl(split)) * ratio
            self.log(f"{split}/bits_per_char", bits, sync_dist=True)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Testing a checkpoint of weight averaging: "state_dict" holds the averaged weights,
        # which Lightning's WeightAveraging would replace by "current_model_state" after this.
        testing = self._trainer is not None and self.trainer.testing
        if testing and "current_model_state" in checkpoint:
            checkpoint["current_model_state"] = checkpoint["state_dict"]

    def configure_callbacks(self) -> list[pl.Callback]:
        return [GradNorm(), DivergenceGuard()]

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        return optimizers(hp.optimizer, hp.lr_scheduler, self.parameters(), self.lr, self.monitor)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:  # load_lm reads the class
        checkpoint["rnnlm_class"] = f"{type(self).__module__}.{type(self).__qualname__}"

    results = staticmethod(metrics.results)  # what results.json keeps of the run's metrics
    summary = staticmethod(metrics.summary)  # the lines printed at the end


class RNNLM(RNNLMScratch):
    """The concise LM: the same training, an `nn.Linear` output layer (not lazy: DDP-safe)."""

    def init_params(self) -> None:
        self.linear = nn.Linear(self.rnn.num_hiddens, self.vocab_size)

    def output_params(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.linear.weight.T, self.linear.bias

"""Training callbacks: the book's printed prediction (d2l.ai §9.5), the tokens' input vectors in
TensorBoard's PROJECTOR, the gradient norm before clipping and the divergence guard that every
language model adds to its runs."""

from __future__ import annotations

import pytorch_lightning as pl
import torch

from rnnlm.errors import UserError, require_count


class GradNorm(pl.Callback):
    """`train/grad_norm`, the global L2 norm clipping acts on, on the steps the logger records
    (the norm is a host sync)."""

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module, optimizer) -> None:
        if trainer.global_step % trainer.log_every_n_steps:
            return
        norms = [
            torch.linalg.vector_norm(p.grad) for p in pl_module.parameters() if p.grad is not None
        ]
        if norms:
            pl_module.log(
                "train/grad_norm", torch.linalg.vector_norm(torch.stack(norms)), on_step=True
            )


class DivergenceGuard(pl.Callback):
    """Stop a diverged run before its NaN weights are checkpointed: the first non-finite loss's
    step kept without a host sync, checked once an epoch."""

    def __init__(self) -> None:
        self.first_bad_step: torch.Tensor | None = None

    def on_before_backward(self, trainer: pl.Trainer, pl_module, loss: torch.Tensor) -> None:
        if self.first_bad_step is None or self.first_bad_step.device != loss.device:
            self.first_bad_step = torch.tensor(-1, device=loss.device)
        bad = ~torch.isfinite(loss.detach()) & (self.first_bad_step < 0)
        self.first_bad_step = torch.where(bad, trainer.global_step, self.first_bad_step)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module) -> None:
        self.check(trainer, pl_module)

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self.check(trainer, pl_module)

    def check(self, trainer: pl.Trainer, pl_module) -> None:
        step = -1 if self.first_bad_step is None else int(self.first_bad_step)
        if step < 0:
            return
        activation = getattr(pl_module.rnn, "activation", "tanh")
        cause = (
            f"no gradient clipping{' with ReLU' if activation == 'relu' else ''}: "
            "set trainer.gradient_clip_val=1"
            if not trainer.gradient_clip_val
            else f"model.lr={pl_module.hparams.lr} is too high for this model: lower it"
        )
        raise UserError(
            f"the training loss became NaN or infinite at step {step} "
            f"(epoch {trainer.current_epoch}); likely cause: {cause}"
        )


class PrintPrediction(pl.Callback):
    """At the end of training, print the book's prediction of `num_preds` tokens after `prefix`."""

    def __init__(self, prefix: str = "it has", num_preds: int = 20) -> None:
        require_count("num_preds", num_preds, minimum=0)
        self.prefix, self.num_preds = prefix, num_preds

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero and not trainer.interrupted:
            try:
                predicted = repr(pl_module.predict(self.prefix, self.num_preds))
            except UserError as err:  # a prefix of tokens this text's vocabulary lacks
                predicted = f"no prediction ({err}; set prefix=... to one of this text)"
            print(f"predict({self.prefix!r}, {self.num_preds}): {predicted}")


class TokenProjector(pl.Callback):
    """At the end of training, each token's input vector (`RNNLMScratch.input_vectors`) in
    TensorBoard's PROJECTOR, labelled by the token (a space, a line break by name), through the
    logger's `add_embedding`."""

    def on_fit_end(self, trainer: pl.Trainer, pl_module) -> None:
        writer = getattr(trainer.logger, "experiment", None)
        if not trainer.is_global_zero or not hasattr(writer, "add_embedding"):
            return
        tokens = pl_module.vocab.idx_to_token
        shown = {" ": "␣ (space)", "\n": "↵ (line break)", "\t": "⇥ (tab)", "\r": "␍ (CR)"}
        labels = [shown.get(t) or (t if t.isprintable() else repr(t)) for t in tokens]
        vectors = pl_module.input_vectors().detach().float().cpu()
        tag = f"{pl_module.text_format.token_name}s"  # characters, bytes, words
        writer.add_embedding(vectors, metadata=labels, tag=tag, global_step=trainer.global_step)

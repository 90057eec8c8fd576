"""What `FastRNNLMScratch` and `FastRNNLM` override of the book's classes, the same numbers:
`inputs` (one-hot rows as indices) and `batch_loss` (`compile=True`: torch.compile;
`cuda_graphs=True`: replayed CUDA graphs, a graph a shape); `FastRNNLM` also `output_layer` and
`loss` (class-major)."""

from __future__ import annotations

from typing import Any

import torch

from rnnlm.carry import map_state
from rnnlm.errors import UserError
from rnnlm.fast.output import class_major_cross_entropy, class_major_logits
from rnnlm.lm import RNNLM, RNNLMScratch


class Fast:
    """The overrides, mixed in before a book class."""

    def __init__(self, *args, compile: bool = False, cuda_graphs: bool = False, **kwargs) -> None:
        # Not a zero-argument super(): Lightning's save_hyperparameters, called in the book's
        # __init__, would read this frame's unchecked arguments over the book's checked ones.
        super().__init__(*args, **kwargs)
        if cuda_graphs and compile:
            raise UserError(
                "model.cuda_graphs=true and model.compile=true are not allowed together: CUDA "
                "graphs compile the batch loss themselves; give one of them"
            )
        self.hparams.update(compile=compile, cuda_graphs=cuda_graphs)  # kept with the book's
        self.compiled = None  # the compiled (or graph-replayed) batch loss, built in `setup`

    def inputs(self, X_time_major: torch.Tensor) -> torch.Tensor:
        """The one-hot rows as their (num_steps, batch) indices, which the cores read as rows
        without building them; embeddings as the book's."""
        if self.embedding is None:
            return X_time_major.long()
        return super().inputs(X_time_major)

    def batch_loss(
        self, X: torch.Tensor, Y: torch.Tensor, state: Any = None
    ) -> tuple[torch.Tensor, Any]:
        if self.compiled is not None:
            return self.compiled(X, Y, state)
        return super().batch_loss(X, Y, state)

    def setup(self, stage: str) -> None:
        """The compiled batch loss, built in every process (after DDP spawn pickled a plain
        module); CUDA graphs only on CUDA (a checkpoint trained with them scores eagerly on a
        CPU)."""
        super().setup(stage)
        on_cuda = self._trainer is not None and self.trainer.strategy.root_device.type == "cuda"
        if self.hparams.cuda_graphs and stage == "fit" and not on_cuda:
            raise UserError(
                "model.cuda_graphs=true needs a CUDA GPU, and this run trains on "
                f"{self.trainer.strategy.root_device.type}: give trainer=gpu on a machine with "
                "one, or leave model.cuda_graphs=false"
            )
        if self.compiled is not None:
            return
        if self.hparams.cuda_graphs and on_cuda:
            self.record_cuda_graphs()
        elif self.hparams.compile:
            self.compiled = torch.compile(super().batch_loss, dynamic=True)

    def record_cuda_graphs(self) -> None:
        """The batch loss through CUDA graphs, recorded per shape; gradients owned first (a
        backward into a `None` gradient would keep the graph's output, which the next replay
        overwrites)."""
        for param in self.parameters():
            if param.grad is None:
                param.grad = torch.zeros_like(param)
        compiled = torch.compile(super().batch_loss, mode="reduce-overhead", dynamic=False)

        def replayed(X: torch.Tensor, Y: torch.Tensor, state: Any = None):
            # Each call is a new step (a replay may overwrite the last one's outputs): the
            # state is copied out of the graph's memory before the next batch carries it on.
            torch.compiler.cudagraph_mark_step_begin()
            loss, state = compiled(X, Y, state)
            return loss, None if state is None else map_state(state, torch.Tensor.clone)

        self.compiled = replayed

    def optimizer_zero_grad(self, epoch: int, batch_idx: int, optimizer, *args) -> None:
        # Recorded backward graphs write into the same gradient tensors at every replay:
        # they are zeroed, not freed (Lightning's default sets them to None).
        optimizer.zero_grad(set_to_none=not self.hparams.cuda_graphs)


class ClassMajor:
    """The output layer and loss class-major (`rnnlm.fast.output`), mixed in before a book class:
    the concise models' (`whole_book`, `raw_book`) figures were measured with it."""

    def output_layer(self, rnn_outputs: torch.Tensor) -> torch.Tensor:
        return class_major_logits(rnn_outputs, *self.output_params())

    def loss(self, Y_hat: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
        return class_major_cross_entropy(Y_hat, Y)


class FastRNNLMScratch(Fast, RNNLMScratch):
    """`RNNLMScratch` with the overrides of `Fast` (`model=scratch`)."""


class FastRNNLM(Fast, ClassMajor, RNNLM):
    """`RNNLM` with the overrides of `Fast` and `ClassMajor` (`model=concise`)."""

"""What the train task needs from a data module and a model, besides Lightning's own hooks.

The task never asks which experiment it runs: the language models and the sine series both
meet these, and so may any new experiment's classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class Core(Protocol):
    """A recurrent core (`rnnlm.rnn`): sizes for the thread and memory estimates."""

    num_inputs: int
    num_hiddens: int
    gates: int  # products of W_hh per step: 1 (RNN), 3 (GRU), 4 (LSTM)


class DataModule(Protocol):
    """A LightningDataModule the task can build a model from and test with."""

    def prepare_data(self) -> None: ...

    def setup(self, stage: str) -> None:
        """For `fit`: refuse sizes the data cannot hold, in one line (a `UserError`)."""

    def model_inputs(self) -> dict[str, Any]:
        """Keyword arguments the model is built with (e.g. the vocabulary)."""

    def batch_shape(self) -> tuple[int, int]:
        """(rows, time steps) of a training batch."""

    def has_test(self) -> bool:
        """Whether `test_dataloader` has anything to score."""


class Model(Protocol):
    """A LightningModule the task can train, select checkpoints for, and report on."""

    monitor: str  # the validation metric (lower is better) that selects and that sweeps minimise
    rnn: Core  # its recurrent core

    def results(self, metrics: Mapping[str, float]) -> dict[str, Any]:
        """What results.json keeps of the run's final metrics."""

    def summary(self, results: Mapping[str, Any]) -> list[str]:
        """The lines printed at the end of the run."""

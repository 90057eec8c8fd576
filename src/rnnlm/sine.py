"""The concise chapter's last exercise: d2l.ai §9.1's autoregressive model with an RNN.

The series (d2l §9.1): x_t = sin(0.01 t) + noise, noise ~ N(0, 0.2^2), t = 1 ... T (1000).
Example i reads the `tau` values x[i : i + tau] and predicts x[i + tau]; the first
`num_train` examples train, the rest validate:

    x:        x0 x1 x2 x3 x4 x5 x6 ...
    example 0 [x0 x1 x2 x3] -> x4
    example 1    [x1 x2 x3 x4] -> x5

`SineRNN` feeds the `tau` values to one of the project's cores unchanged (`RNNScratch`,
`torch.nn.RNN`, ...; one input per step, from a zero state) and reads the prediction from
the last hidden state with a linear layer. `linear_fit` is the book's model: least squares on
the `tau` lags. `k_step` predicts k steps ahead by feeding a model its own predictions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from rnnlm.errors import UserError, require_count, require_positive
from rnnlm.partials import check_buildable, optimizer_config, plain

HORIZONS = (1, 4, 16, 64)


class SineSeries(pl.LightningDataModule):
    """The noisy sine of d2l §9.1 as (tau lags -> next value) examples."""

    def __init__(
        self,
        T: int = 1000,
        tau: int = 4,
        noise: float = 0.2,
        num_train: int = 600,
        batch_size: int = 16,
        seed: int = 42,
    ) -> None:
        super().__init__()
        require_count("data.T", T)
        require_count("data.tau", tau)
        require_count("data.batch_size", batch_size)
        if isinstance(noise, bool) or not isinstance(noise, int | float) or noise < 0:
            raise UserError(f"data.noise={noise!r} is not allowed: it must be a number >= 0")
        require_count("data.num_train", num_train)
        if num_train >= T - tau:
            raise UserError(
                f"data.num_train={num_train} is not allowed: the series of data.T={T} values "
                f"makes {T - tau} examples of data.tau={tau} lags, and some must be left to "
                f"validate: use data.num_train < {T - tau}"
            )
        self.save_hyperparameters()
        self.T, self.tau, self.noise, self.num_train = T, tau, noise, num_train
        self.batch_size, self.seed = batch_size, seed
        generator = torch.Generator().manual_seed(seed)
        self.time = torch.arange(1, T + 1, dtype=torch.float32)
        self.x = torch.sin(0.01 * self.time) + torch.randn(T, generator=generator) * noise
        self.features = lags(self.x, tau)  # (T - tau, tau)
        self.labels = self.x[tau:]  # (T - tau,)
        self.num_steps = tau  # the steps the core reads (memory and thread estimates)

    def loader(self, part: slice, shuffle: bool) -> DataLoader:
        data = TensorDataset(self.features[part], self.labels[part])
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(data, batch_size=self.batch_size, shuffle=shuffle, generator=generator)

    def train_dataloader(self) -> DataLoader:
        return self.loader(slice(0, self.num_train), shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader(slice(self.num_train, None), shuffle=False)

    def model_inputs(self) -> dict:
        """What the model needs from the data: nothing (the model reads one value a step)."""
        return {}

    def check_sizes(self) -> None:
        """Sizes are checked when the series is made."""


def lags(x: torch.Tensor, tau: int) -> torch.Tensor:
    """(len(x) - tau, tau): row i is x[i : i + tau]."""
    return x.unfold(0, tau, 1)[: len(x) - tau]


class SineRNN(pl.LightningModule):
    """A recurrent core over the `tau` lags, a linear layer to the next value, squared error."""

    monitor = "val/mse"

    def __init__(
        self,
        rnn: Any,
        lr: float = 0.01,
        optimizer: str | Any = "adam",
        horizons: Sequence[int] = HORIZONS,
    ) -> None:
        super().__init__()
        require_positive("model.lr", lr)
        optimizer = optimizer_config(optimizer, weight_decay=0.0)  # as the language models
        check_buildable("model.optimizer", optimizer)
        for k in horizons:
            require_count("model.horizons", k)
        horizons = [int(k) for k in horizons]  # plain ints in the checkpoint (weights_only)
        rnn = plain(rnn)
        rnn.pop("num_inputs", None)  # one value a step, set here (older checkpoints name it)
        self.save_hyperparameters()
        self.rnn = instantiate({**rnn, "num_inputs": 1})
        self.head = nn.Linear(self.rnn.num_hiddens, 1)
        self.best_val_mse = float("inf")

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        """(batch, tau) values -> (batch,) predictions of the next one."""
        outputs, _ = self.rnn(window.T.unsqueeze(-1))  # (tau, batch, 1): one input per step
        return self.head(outputs[-1]).squeeze(-1)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        loss = nn.functional.mse_loss(self(batch[0]), batch[1])
        self.log("train/mse", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> None:
        self.log("val/mse", nn.functional.mse_loss(self(batch[0]), batch[1]), prog_bar=True)

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking and "val/mse" in self.trainer.callback_metrics:
            self.best_val_mse = min(
                self.best_val_mse, float(self.trainer.callback_metrics["val/mse"])
            )
            self.log("val/mse_best", self.best_val_mse)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return instantiate(self.hparams.optimizer)(self.parameters(), lr=self.hparams.lr)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["rnnlm_class"] = f"{type(self).__module__}.{type(self).__qualname__}"


def linear_fit(features: torch.Tensor, labels: torch.Tensor) -> Callable:
    """The book's linear regression on the lags, solved exactly by least squares (with a bias)."""
    design = torch.cat([features, torch.ones(len(features), 1)], 1)
    solution = torch.linalg.lstsq(design, labels.unsqueeze(1)).solution.squeeze(1)
    weights, bias = solution[:-1], solution[-1]
    return lambda window: window @ weights + bias


@torch.no_grad()
def k_step(predict: Callable, x: torch.Tensor, tau: int, k: int, targets: slice) -> torch.Tensor:
    """Predictions of x[j] for every j in `targets`, each made k steps ahead: from the true
    values x[j-k-tau+1 : j-k+1], the model predicts k times, reading its own predictions."""
    first, stop = targets.start, targets.stop if targets.stop is not None else len(x)
    starts = torch.arange(first - tau - k + 1, stop - tau - k + 1)
    if starts[0] < 0:
        raise UserError(f"a {k}-step prediction of x[{first}] would start before the series")
    window = x[starts.unsqueeze(1) + torch.arange(tau)]  # (targets, tau)
    for _ in range(k):
        window = torch.cat([window[:, 1:], predict(window).unsqueeze(1)], 1)
    return window[:, -1]


def predictions(
    model: SineRNN, dm: SineSeries, horizons: Sequence[int] = HORIZONS
) -> dict[str, dict[int, torch.Tensor]]:
    """The k-step predictions of every validation value, for every k in `horizons`, by the RNN
    and by the linear model fitted on the training part: {"rnn": {k: ...}, "linear": ...}."""
    train = slice(0, dm.num_train)
    models = {
        "rnn": lambda w: model(w.to(model.device)).cpu(),
        "linear": linear_fit(dm.features[train], dm.labels[train]),
    }
    was_training = model.training
    model.eval()
    targets = validation_targets(dm)
    predicted = {
        name: {k: k_step(f, dm.x, dm.tau, k, targets) for k in horizons}
        for name, f in models.items()
    }
    model.train(was_training)
    return predicted


def validation_targets(dm: SineSeries) -> slice:
    """The positions of the series that the validation examples predict."""
    return slice(dm.num_train + dm.tau, dm.T)


def horizon_errors(
    predicted: dict[str, dict[int, torch.Tensor]], dm: SineSeries
) -> dict[str, dict[str, float]]:
    """Mean squared error of `predictions` over the validation values: {"k": {"rnn", "linear"}}."""
    truth = dm.x[validation_targets(dm)]
    horizons = next(iter(predicted.values()))
    return {
        str(k): {name: float(((by_k[k] - truth) ** 2).mean()) for name, by_k in predicted.items()}
        for k in horizons
    }


def plot_predictions(predicted: dict[str, dict[int, torch.Tensor]], dm: SineSeries):
    """The book's figure: the series and the RNN's k-step predictions over the validation part,
    next to the linear model's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = validation_targets(dm)
    fig, axes = plt.subplots(1, 2, figsize=(13, 4), sharey=True, layout="constrained")
    for ax, (name, by_k) in zip(axes, predicted.items(), strict=True):
        ax.plot(dm.time, dm.x, color="0.75", lw=1, label="x (data)")
        for k, values in by_k.items():
            ax.plot(dm.time[targets], values, lw=1.2, label=f"{k}-step")
        ax.axvline(float(dm.time[targets.start]), color="0.4", ls=":", lw=1)
        title = "RNN" if name == "rnn" else name
        ax.set(title=f"{title}: k-step-ahead predictions on the validation part", xlabel="time")
    axes[0].set_ylabel("x")
    axes[1].legend(loc="lower left", fontsize=8)
    return fig

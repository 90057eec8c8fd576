"""The concise chapter's last exercise: d2l.ai §9.1's autoregressive model with an RNN. `SineRNN`
feeds the `tau` lags to one of the project's cores (one input a step) and reads the next value
from the last state; `linear_fit` is the book's model; `k_step` predicts k steps ahead from its
own predictions."""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from torch import nn
from torchmetrics import MeanSquaredError, MinMetric

from rnnlm.errors import UserError, require_count, require_number
from rnnlm.files import write_bytes
from rnnlm.metrics import own_metric_states
from rnnlm.partials import ADAM, optimizers, partial_config, plain

if TYPE_CHECKING:
    from rnnlm.sine.series import SineSeries

HORIZONS = (1, 4, 16, 64)


class SineRNN(pl.LightningModule):
    """A recurrent core over the `tau` lags, a linear layer to the next value, squared error. Its
    test (the checkpoint val/mse chose) predicts every validation value 1 to 64 steps ahead
    beside the book's linear model: `horizon/<rnn|linear>_mse_<k>`, and `self.predicted` for the
    figure."""

    monitor = "val/mse"

    def __init__(
        self,
        rnn: Any,
        lr: float = 0.01,
        optimizer: Any = ADAM,
        horizons: Sequence[int] = HORIZONS,
    ) -> None:
        super().__init__()
        require_number("model.lr", lr)
        optimizer, rnn = partial_config("model.optimizer", optimizer), plain(rnn)
        for k in horizons:
            require_count("model.horizons", k)
        horizons = [int(k) for k in horizons]  # plain ints in the checkpoint (weights_only)
        self.save_hyperparameters()
        self.rnn = instantiate({**rnn, "num_inputs": 1})  # one value a step
        self.head = nn.Linear(self.rnn.num_hiddens, 1)
        self.mse = nn.ModuleDict({f"{s}_mse": MeanSquaredError() for s in ("train", "val", "test")})
        self.val_mse_best = MinMetric(sync_on_compute=False)
        self.val_mse_best.persistent(True)
        self.predicted: dict[str, dict[int, torch.Tensor]] = {}

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        """(batch, tau) values -> (batch,) predictions of the next one."""
        outputs, _ = self.rnn(window.T.unsqueeze(-1))  # (tau, batch, 1): one input per step
        return self.head(outputs[-1]).squeeze(-1)

    def scored_step(self, batch: tuple[torch.Tensor, torch.Tensor], split: str) -> torch.Tensor:
        predicted = self(batch[0])
        self.mse[f"{split}_mse"].update(predicted.detach(), batch[1])
        return nn.functional.mse_loss(predicted, batch[1])

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        return self.scored_step(batch, "train")

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> None:
        self.scored_step(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> None:
        self.scored_step(batch, "test")

    def setup(self, stage: str) -> None:
        own_metric_states(self)  # every process its own (ddp_spawn: rnnlm.metrics)

    def on_train_epoch_end(self) -> None:
        self.log("train/mse", self.mse["train_mse"])

    def on_validation_epoch_end(self) -> None:
        mse = self.mse["val_mse"].compute()  # synced once; self.log reuses the result
        self.log("val/mse", self.mse["val_mse"], prog_bar=True)
        if not self.trainer.sanity_checking:
            self.val_mse_best.update(mse)
            self.log("val/mse_best", self.val_mse_best.compute(), sync_dist=True)

    def on_test_epoch_end(self) -> None:
        """The k-step predictions, made once: scored here, drawn by `PredictionsFigure`."""
        self.log("test/mse", self.mse["test_mse"])
        dm = self.trainer.datamodule
        self.predicted = predictions(self, dm, self.hparams.horizons)
        for k, errors in horizon_errors(self.predicted, dm).items():
            for name, value in errors.items():
                # The same on every rank: sync_dist only spares Lightning's warning.
                self.log(f"horizon/{name}_mse_{k}", value, sync_dist=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return optimizers(self.hparams.optimizer, None, self.parameters(), self.hparams.lr, "")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["rnnlm_class"] = f"{type(self).__module__}.{type(self).__qualname__}"

    def results(self, metrics: Mapping[str, float]) -> dict[str, Any]:
        horizons = {
            str(k): {name: metrics[f"horizon/{name}_mse_{k}"] for name in ("rnn", "linear")}
            for k in self.hparams.horizons
            if f"horizon/rnn_mse_{k}" in metrics
        }
        return {
            "val_mse": metrics["val/mse"],
            "best_val_mse": metrics.get("val/mse_best", math.inf),
            "horizons": horizons,
        }

    def summary(self, results: Mapping[str, Any]) -> list[str]:
        lines = [f"val/mse {results['val_mse']:.4f} (best {results['best_val_mse']:.4f})"]
        if results["horizons"]:
            lines.append("mean squared error k steps ahead on the validation part:")
            for k, errors in results["horizons"].items():
                lines.append(f"  k={k:>3}  rnn {errors['rnn']:.4f}  linear {errors['linear']:.4f}")
        return lines


class PredictionsFigure(pl.Callback):
    """After the test: the book's figure of the k-step predictions, `predictions.png` and IMAGES."""

    def on_test_end(self, trainer: pl.Trainer, pl_module: SineRNN) -> None:
        if not trainer.is_global_zero or not pl_module.predicted:
            return
        figure = plot_predictions(pl_module.predicted, trainer.datamodule)
        png = io.BytesIO()
        figure.savefig(png, format="png", dpi=100)
        write_bytes(Path(trainer.default_root_dir) / "predictions.png", png.getvalue())
        add_figure = getattr(trainer.logger and trainer.logger.experiment, "add_figure", None)
        if add_figure is not None:
            add_figure("predictions", figure, trainer.global_step)


def linear_fit(features: torch.Tensor, labels: torch.Tensor) -> Callable:
    """The book's linear regression on the lags, solved exactly by least squares (with a bias)."""
    design = torch.cat([features, torch.ones(len(features), 1)], 1)
    solution = torch.linalg.lstsq(design, labels.unsqueeze(1)).solution.squeeze(1)
    weights, bias = solution[:-1], solution[-1]
    return lambda window: window @ weights + bias


@torch.no_grad()
def k_step(predict: Callable, x: torch.Tensor, tau: int, k: int, targets: slice) -> torch.Tensor:
    """Predictions of x[j] for every j in `targets`, each k steps ahead: from x[j-k-tau+1 :
    j-k+1], the model predicts k times, reading its own predictions."""
    first, stop = targets.start, targets.stop if targets.stop is not None else len(x)
    starts = torch.arange(first - tau - k + 1, stop - tau - k + 1)
    if starts[0] < 0:
        raise UserError(f"a {k}-step prediction of x[{first}] would start before the series")
    window = x[starts.unsqueeze(1) + torch.arange(tau)]  # (targets, tau)
    for _ in range(k):
        window = torch.cat([window[:, 1:], predict(window).unsqueeze(1)], 1)
    return window[:, -1]


def predictions(model: SineRNN, dm: SineSeries, horizons: Sequence[int] = HORIZONS) -> dict:
    """Every validation value predicted k steps ahead, for every k in `horizons`, by the RNN and
    by the linear model fitted on the training part: {"rnn": {k: values}, "linear": ...}."""
    train = slice(0, dm.num_train)
    models = {
        "rnn": lambda w: model(w.to(model.device)).cpu(),
        "linear": linear_fit(dm.features[train], dm.labels[train]),
    }
    was_training = model.training
    model.eval()
    predicted = {
        n: {k: k_step(f, dm.x, dm.tau, k, dm.val_targets) for k in horizons}
        for n, f in models.items()
    }
    model.train(was_training)
    return predicted


def horizon_errors(predicted: dict, dm: SineSeries) -> dict[str, dict[str, float]]:
    """The mean squared error of each model's k-step predictions: {"k": {"rnn", "linear"}}."""
    truth = dm.x[dm.val_targets]
    horizons = next(iter(predicted.values()))
    return {
        str(k): {name: float(((by_k[k] - truth) ** 2).mean()) for name, by_k in predicted.items()}
        for k in horizons
    }


def plot_predictions(predicted: dict[str, dict[int, torch.Tensor]], dm: SineSeries):
    """The book's figure: the series and each model's k-step predictions over the validation
    part."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = dm.val_targets
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

"""The Hydra task (d2l.ai §9.5's run): settings -> data -> model -> logger and callbacks ->
Trainer -> fit -> test -> report. What an experiment changes is a callback or model hook its
config chooses."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Protocol

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig

from rnnlm.errors import UserError, user_errors
from rnnlm.fast.threads import use_threads
from rnnlm.ops.board import finish
from rnnlm.ops.resume import check_resumable, fit, resume_path, selected_checkpoint
from rnnlm.ops.trainer import build_trainer, check_run_settings


class DataModule(Protocol):
    """A LightningDataModule the task can build a model from and test with."""

    def prepare_data(self) -> None: ...
    def setup(self, stage: str) -> None: ...  # for `fit`: sizes refused in one line
    def model_inputs(self) -> dict[str, Any]: ...  # what the model is built with (the vocabulary)
    def has_test(self) -> bool: ...  # whether `test_dataloader` has anything to score


class Model(Protocol):
    """A LightningModule the task can train, select checkpoints for, and report on."""

    monitor: str  # the validation metric (lower is better) that selects and that sweeps minimise

    def results(self, metrics: dict[str, float]) -> dict[str, Any]: ...  # results.json's
    def summary(self, results: dict[str, Any]) -> list[str]: ...  # the lines printed at the end


@user_errors
def train(cfg: DictConfig, output_dir: str | Path) -> float:
    """Train in `output_dir`, test the checkpoint val/ppl chose; returns that metric (a sweep's)."""
    output_dir = Path(output_dir)
    ckpt_path = settings(cfg, output_dir)
    dm = data(cfg)
    model = build_model(cfg, dm, ckpt_path)
    logger, callbacks = observers(cfg, output_dir)
    trainer = build_trainer(cfg, output_dir, logger, callbacks)
    start = time.perf_counter()
    fit(trainer, model, dm, ckpt_path, output_dir)
    seconds = time.perf_counter() - start
    metrics, tested_with = test(trainer, model, dm)
    finish(cfg, output_dir, trainer, model, metrics, report(model, dm, seconds, tested_with))
    return float(metrics[model.monitor])


def settings(cfg: DictConfig, output_dir: Path) -> str | None:
    """The run's settings checked and applied; the checkpoint it carries on from, if any."""
    check_run_settings(cfg)
    use_threads(cfg.get("threads"))
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    return resume_path(cfg.get("ckpt_path"), output_dir)


def data(cfg: DictConfig) -> DataModule:
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def build_model(cfg: DictConfig, dm: DataModule, ckpt_path: str | None) -> Model:
    """The model sized by the data (it keeps its optimizer and scheduler as partial configs);
    a checkpoint it cannot carry on from is refused before training."""
    model = instantiate(cfg.model, _recursive_=False, **dm.model_inputs())
    if ckpt_path is not None:
        check_resumable(ckpt_path, model, cfg.trainer.get("max_epochs"))
    return model


def observers(cfg: DictConfig, output_dir: Path) -> tuple[Any, list[pl.Callback]]:
    """The logger (`~logger` removes it: no events) and the callbacks of the config."""
    logger = instantiate(cfg.logger, save_dir=str(output_dir)) if cfg.get("logger") else False
    return logger, [instantiate(c) for c in cfg.get("callbacks", {}).values() if c is not None]


def test(trainer: pl.Trainer, model: Model, dm: DataModule) -> tuple[dict[str, float], Any]:
    """What Lightning hands back (also from ddp_spawn's workers), with the test part scored
    once by the checkpoint val/ppl chose (with weight averaging: the averaged weights), and
    which weights scored it (None: no test part)."""
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if model.monitor not in metrics:
        raise UserError(f"training ended before any validation epoch: no {model.monitor} to report")
    if not dm.has_test():
        print(
            "no test figure: the data has no test part (data=book scores none; on a short "
            "text the validation part may take it all)"
        )
        return metrics, None
    chosen = selected_checkpoint(trainer, model.monitor)
    (tested,) = trainer.test(model, datamodule=dm, ckpt_path=chosen, verbose=False)
    return metrics | tested, chosen or "the weights at the end of training"


def report(model: Model, dm: DataModule, seconds: float, tested_with) -> dict[str, Any]:
    """What results.json keeps beside the model's figures and the epochs: time, size, the
    weights that scored the test part, and the tokens each part reads as <unk>."""
    results = {"fit_seconds": round(seconds, 3)}
    results["parameters"] = sum(p.numel() for p in model.parameters())
    if tested_with is not None:
        results["test_checkpoint"] = tested_with
    unknown = getattr(dm, "unknown", None)
    if unknown is not None:  # a word vocabulary's rare words
        results["unknown_tokens"] = unknown()
    return results

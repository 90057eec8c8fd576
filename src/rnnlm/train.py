"""The Hydra task (d2l.ai §9.5's run): config -> data module -> model -> logger, callbacks ->
Trainer -> fit -> test. What an experiment changes is a callback or model hook its config
chooses."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig
from pytorch_lightning.callbacks import ModelSummary

from rnnlm.errors import UserError
from rnnlm.fast import threads
from rnnlm.fast.cpu import ShareCores, step_work, tune_allocator
from rnnlm.ops import report
from rnnlm.ops.board import finish
from rnnlm.ops.checks import check_memory, check_run_settings, local_processes
from rnnlm.ops.cli import unwrap_user_errors
from rnnlm.ops.resume import (
    AtomicCheckpointIO,
    check_resumable,
    epochs_trained,
    fit,
    resume_path,
    selected_checkpoint,
)
from rnnlm.ops.trainer import (
    MatmulPrecision,
    ProcessGroupCleanup,
    build_trainer,
    quiet_known_noise,
    slurm_plugins,
)


class DataModule(Protocol):
    """A LightningDataModule the task can build a model from and test with."""

    def prepare_data(self) -> None: ...
    def setup(self, stage: str) -> None: ...  # for `fit`: sizes refused in one line
    def model_inputs(self) -> dict[str, Any]: ...  # what the model is built with (the vocabulary)
    def batch_shape(self) -> tuple[int, int]: ...  # (rows, time steps) of a training batch
    def has_test(self) -> bool: ...  # whether `test_dataloader` has anything to score


class Model(Protocol):
    """A LightningModule the task can train, select checkpoints for, and report on."""

    monitor: str  # the validation metric (lower is better) that selects and that sweeps minimise
    rnn: Any  # its recurrent core: num_inputs, num_hiddens, gates (products of W_hh per step)

    def results(self, metrics: Mapping[str, float]) -> dict[str, Any]: ...  # for results.json
    def summary(self, results: Mapping[str, Any]) -> list[str]: ...  # the lines printed at the end


@unwrap_user_errors
def build(
    cfg: DictConfig, output_dir: Path, ckpt_path: str | None = None
) -> tuple[DataModule, Model, pl.Trainer]:
    """Everything `fit` needs; a checkpoint to resume from is checked before the Trainer is
    built."""
    precision = MatmulPrecision(cfg.get("matmul_precision", "highest"))  # checked before data
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup("fit")
    # The model builds its core and keeps its optimizer and scheduler as configs (partials).
    model = instantiate(cfg.model, _recursive_=False, **dm.model_inputs())
    rows, steps = dm.batch_shape()
    check_memory(rows, steps, model)
    if ckpt_path is not None:
        check_resumable(ckpt_path, model, dm.model_inputs(), cfg.trainer.get("max_epochs"))
    processes = local_processes(cfg.trainer)
    threads.choose(cfg.threads, step_work(model, rows), processes)
    # ~logger on the command line removes the group: no events, no TensorBoard
    logger = instantiate(cfg.logger, save_dir=str(output_dir)) if cfg.get("logger") else False
    callbacks = [instantiate(c) for c in cfg.get("callbacks", {}).values() if c is not None]
    quiet = {} if cfg.get("verbose") else {"enable_model_summary": False}
    if quiet:  # the model summary table is Lightning's too: shown with verbose=true
        callbacks = [c for c in callbacks if not isinstance(c, ModelSummary)]
    most = threads.share(processes)
    if cfg.threads == "auto" and most > 1:  # also small steps: every core left free, while free
        callbacks.append(ShareCores(most=most))
    callbacks += [precision, ProcessGroupCleanup()]
    trainer = build_trainer(
        cfg.trainer,
        default_root_dir=str(output_dir),  # checkpoints/ go here also without a logger
        logger=logger,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO(), *slurm_plugins()],
        **quiet,
    )
    return dm, model, trainer


def train(cfg: DictConfig, output_dir: str | Path) -> float:
    """Train in `output_dir`, test the checkpoint val/ppl chose; returns that metric (a sweep's)."""
    output_dir = Path(output_dir)
    check_run_settings(cfg)
    tune_allocator()
    quiet_known_noise(cfg.get("verbose", False))
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    ckpt_path = resume_path(cfg.get("ckpt_path"), output_dir)
    dm, model, trainer = build(cfg, output_dir, ckpt_path)
    start = time.perf_counter()
    fit(trainer, model, dm, ckpt_path, output_dir)
    results = {
        "epochs": epochs_trained(trainer, output_dir),
        "fit_seconds": round(time.perf_counter() - start, 3),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    # What Lightning hands back, also from ddp_spawn's workers: the logged metrics.
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if model.monitor not in metrics:
        raise UserError(f"training ended before any validation epoch: no {model.monitor} to report")
    unknown = getattr(dm, "unknown", None)
    if unknown is not None:  # tokens each part reads as <unk> (a word vocabulary's rare words)
        results["unknown_tokens"] = unknown()
    if dm.has_test():
        # The checkpoint val/ppl chose (with weight averaging: the averaged weights).
        chosen = selected_checkpoint(trainer, model.monitor)
        (tested,) = trainer.test(model, datamodule=dm, ckpt_path=chosen, verbose=False)
        metrics.update(tested)
        results["test_checkpoint"] = chosen or "the weights at the end of training"
    else:
        print(
            "no test figure: the data has no test part (data=book scores none; on a short "
            "text the validation part may take it all)"
        )
    finish(cfg, output_dir, trainer, model, {**results, **report.results(model, metrics)})
    return float(metrics[model.monitor])

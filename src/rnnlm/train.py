"""The Hydra task: config -> data module -> model -> logger/callbacks -> Trainer -> fit -> test.

Follows the book's training run (d2l.ai §9.5): 100 epochs, SGD, gradient clipping at 1. What
differs between experiments (the sine series' horizons and figure, the printed prediction) is
a callback or a model hook that the experiment's config chooses (`rnnlm.protocols`).
"""

from __future__ import annotations

import contextlib
import signal
import time
from pathlib import Path

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig
from pytorch_lightning.callbacks import ModelSummary
from pytorch_lightning.plugins.environments import SLURMEnvironment
from pytorch_lightning.utilities import rank_zero_only
from pytorch_lightning.utilities.exceptions import SIGTERMException

from rnnlm.errors import UserError, unwrap_user_errors
from rnnlm.fast import threads
from rnnlm.fast.cpu import ShareCores, step_work, tune_allocator
from rnnlm.ops.board import TensorBoard, run_settings
from rnnlm.ops.cli import in_multirun  # the Hydra mode query (no Lightning import)
from rnnlm.ops.files import write_json
from rnnlm.ops.resume import (
    AtomicCheckpointIO,
    check_resumable,
    epochs_trained,
    last_checkpoint,
    resume_path,
    stopped,
)
from rnnlm.ops.trainer import (
    MatmulPrecision,
    ProcessGroupCleanup,
    build_trainer,
    check_memory,
    check_run_settings,
    local_processes,
    quiet_known_noise,
    slurm_plugins,
)
from rnnlm.protocols import DataModule, Model


@unwrap_user_errors
def build(
    cfg: DictConfig, output_dir: Path, ckpt_path: str | None = None
) -> tuple[DataModule, Model, pl.Trainer]:
    """Everything `fit` needs, with the checkpoint to resume from checked before the Trainer
    is built (its lines come after); run-time objects are passed as keyword arguments."""
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
    """Train as configured in `output_dir`, then test the checkpoint the validation metric
    selected; returns the final value of that metric (what a sweep minimises)."""
    output_dir = Path(output_dir)
    check_run_settings(cfg)
    tune_allocator()
    quiet_known_noise(cfg.get("verbose", False))
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    if in_multirun() and cfg.trainer.get("strategy") == "ddp" and not SLURMEnvironment.detect():
        raise UserError(
            "trainer.strategy=ddp inside a multirun (-m) would re-run the whole sweep in every "
            "rank: use trainer=ddp_spawn for sweeps on one node, or hydra/launcher=slurm, "
            "which starts one SLURM task per device"
        )
    ckpt_path = resume_path(cfg.get("ckpt_path"), output_dir)
    dm, model, trainer = build(cfg, output_dir, ckpt_path)
    start = time.perf_counter()
    fit(trainer, model, dm, ckpt_path, output_dir)
    fit_seconds = time.perf_counter() - start
    # What Lightning hands back, also from ddp_spawn's workers: the logged metrics and the
    # selected checkpoint's path.
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if model.monitor not in metrics:
        raise UserError(f"training ended before any validation epoch: no {model.monitor} to report")
    chosen = selected_checkpoint(trainer, model.monitor)
    results = {
        "epochs": epochs_trained(trainer, output_dir),
        "fit_seconds": round(fit_seconds, 3),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    unknown = getattr(dm, "unknown", None)
    if unknown is not None:  # tokens each part reads as <unk> (a word vocabulary's rare words)
        results["unknown_tokens"] = unknown()
    if dm.has_test():
        # With weight averaging the checkpoint holds the averaged weights (lm.on_load_checkpoint).
        (tested,) = trainer.test(model, datamodule=dm, ckpt_path=chosen, verbose=False)
        metrics.update(tested)
        results["test_checkpoint"] = chosen or "the weights at the end of training"
    else:
        print("no test figure: nothing is left for a test part after the validation part")
    results = {**results, **model.results(metrics)}
    finish(cfg, output_dir, trainer, model, results)
    return float(metrics[model.monitor])


def fit(trainer: pl.Trainer, model: Model, dm: DataModule, ckpt_path, output_dir: Path) -> None:
    """`trainer.fit`, with what a stopped run says and its exit status (`rnnlm.ops.resume`)."""
    if signal.getsignal(signal.SIGINT) not in (signal.SIG_IGN, None):  # Ctrl-C: Lightning's
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        # Lightning raises SIGTERMException only once received_sigterm is set: one check below.
        with contextlib.suppress(SIGTERMException):
            trainer.fit(model, dm, ckpt_path=ckpt_path)
    except SystemExit:  # Ctrl-C: Lightning shuts down cleanly, then exits with status 1
        if trainer.interrupted:
            stopped(trainer, output_dir, signal.SIGINT)
        raise
    if trainer.received_sigterm:  # also a SIGTERM during the last epoch's end
        stopped(trainer, output_dir, signal.SIGTERM)


def selected_checkpoint(trainer: pl.Trainer, metric: str) -> str | None:
    """The checkpoint that `metric` selected (with weight averaging: the averaged weights)."""
    for callback in trainer.checkpoint_callbacks:
        if callback.monitor == metric and callback.best_model_path:
            return callback.best_model_path
    return None


@rank_zero_only
def finish(cfg: DictConfig, output_dir: Path, trainer, model: Model, results: dict) -> None:
    """Rank 0: results.json (for sweep reports), the HPARAMS tab, the printed summary."""
    write_json(output_dir / "results.json", results)
    if isinstance(trainer.logger, TensorBoard):
        trainer.logger.log_run_settings(run_settings(cfg))
    elif trainer.logger is not None:
        trainer.logger.log_hyperparams(run_settings(cfg))
    if trainer.logger is not None:
        trainer.logger.finalize("success")
    for line in model.summary(results):
        print(line)
    last = last_checkpoint(output_dir)
    print(f"run folder {output_dir}" + (f"; last checkpoint {last}" if last.is_file() else ""))

"""The Trainer of a run: what Lightning would run with silently refused first, then built from
its config (what Lightning refuses, in one line) or bare (scoring, benchmarks)."""

from __future__ import annotations

import atexit
import logging
import os
import warnings
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig
from pytorch_lightning.callbacks import ModelSummary
from pytorch_lightning.plugins.environments import SLURMEnvironment
from pytorch_lightning.utilities.exceptions import MisconfigurationException

from rnnlm.errors import UserError, require_choice, require_count, require_number
from rnnlm.ops.resume import AtomicCheckpointIO


def check_run_settings(cfg: DictConfig) -> None:
    """What Lightning would run with anyway, and should not: refused in one line."""
    from hydra.core.hydra_config import HydraConfig

    require_count("seed", cfg.get("seed"), minimum=0)
    trainer = cfg.trainer
    multirun = HydraConfig.initialized() and HydraConfig.get().mode.name == "MULTIRUN"
    if multirun and trainer.get("strategy") == "ddp" and not SLURMEnvironment.detect():
        raise UserError(
            "trainer.strategy=ddp inside a multirun (-m) would re-run the whole sweep in every "
            "rank: use trainer=ddp_spawn for sweeps on one node, or hydra/launcher=slurm, "
            "which starts one SLURM task per device"
        )
    if trainer.get("max_epochs") is not None:  # -1 would train forever: use trainer.max_time
        require_count("trainer.max_epochs", trainer.max_epochs)
    if trainer.get("gradient_clip_val") is not None:
        why = ", or null for no clipping"
        require_number("trainer.gradient_clip_val", trainer.gradient_clip_val, why=why)
    if cfg.data.get("sampling") == "sequential" and trainer.get("use_distributed_sampler"):
        raise UserError(
            "data.sampling=sequential with trainer.use_distributed_sampler=true is not allowed: "
            "Lightning's sampler would deal the streamed batches out of order; rnnlm shards the "
            "streams itself: set trainer.use_distributed_sampler=false"
        )
    if cfg.model.get("cuda_graphs") and not torch.cuda.is_available():
        raise UserError(
            "model.cuda_graphs=true needs a CUDA GPU and this machine has none that torch can "
            "use: leave model.cuda_graphs=false"
        )
    devices, cores = trainer.get("devices", "auto"), os.cpu_count() or 1
    on_cpu = trainer.get("accelerator", "auto") == "cpu" or not torch.cuda.is_available()
    if on_cpu and isinstance(devices, int) and devices > cores:
        raise UserError(
            f"trainer.devices={devices} CPU processes on a machine with {cores} cores: each "
            f"process needs a core of its own; use at most trainer.devices={cores}"
        )


def build_trainer(cfg: DictConfig, output_dir: Path, logger, callbacks: list) -> pl.Trainer:
    """`cfg.trainer` with the run's logger, callbacks and checkpoint writer; an argument
    `pl.Trainer` does not take or a value Lightning rejects in one line."""
    verbose = quiet_known_noise(cfg.get("verbose", False))
    if not verbose:  # the model summary table is Lightning's too: shown with verbose=true
        callbacks = [c for c in callbacks if not isinstance(c, ModelSummary)]
    # Under SLURM, requeueing is submitit's: Lightning's SIGUSR1 handler would replace it and
    # write hpc_ckpt files into the working folder that every job of a sweep shares.
    slurm = [SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else []
    try:
        return instantiate(
            cfg.trainer,
            default_root_dir=str(output_dir),  # checkpoints/ go here also without a logger
            logger=logger,
            callbacks=[*callbacks, EveryProcess(cfg.get("matmul_precision", "highest"))],
            plugins=[AtomicCheckpointIO(), *slurm],
            **({} if verbose else {"enable_model_summary": False}),
        )
    except InstantiationException as err:
        cause = err
        while cause.__cause__ is not None:
            cause = cause.__cause__
        if isinstance(cause, TypeError | ValueError | MisconfigurationException):
            raise UserError(f"trainer settings refused by Lightning: {cause}") from None
        raise


def quiet_known_noise(verbose: bool = False) -> bool:
    """Lightning's INFO lines (devices, tips, restored checkpoints) only with `verbose` or
    `hydra.verbose=pytorch_lightning`, and no warning that does not apply here. Returns whether
    Lightning speaks."""
    verbose = verbose or logging.getLogger("pytorch_lightning").isEnabledFor(logging.DEBUG)
    for name in ("pytorch_lightning", "lightning_fabric"):
        rank_zero = logging.getLogger(f"{name}.utilities.rank_zero")
        rank_zero.setLevel(logging.NOTSET if verbose else logging.WARNING)
    # Batches are cut by tensor indexing in the main process: workers would only add overhead.
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    # A short text's few batches per epoch: the logger records the epoch's figures anyway.
    warnings.filterwarnings("ignore", ".*is smaller than the logging interval.*")
    # Raised inside Lightning 2.6 itself with torch >= 2.10; nothing a user can change.
    warnings.filterwarnings("ignore", ".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*")
    return verbose


def bare_trainer(**kwargs) -> pl.Trainer:
    """A Trainer with no logger, checkpoints, bar or summary (scoring, benchmarks, tests)."""
    off = ("logger", "enable_checkpointing", "enable_progress_bar", "enable_model_summary")
    # rnnlm's samplers shard the data themselves
    return pl.Trainer(**{**dict.fromkeys(off, False), "use_distributed_sampler": False, **kwargs})


class EveryProcess(pl.Callback):
    """In every process of a run (DDP spawn's too): `torch.set_float32_matmul_precision`
    (`highest` is plain float32, the book's maths; `high` and `medium` allow TF32 or bfloat16),
    and the process group destroyed at a normal exit, before the interpreter tears down: left to
    finalization, gloo's threads may still hold Python objects and the rank aborts ("terminate
    called without an active exception"; pytorch/pytorch#190489)."""

    def __init__(self, precision: str) -> None:
        allowed = ("highest", "high", "medium")
        self.precision = require_choice("matmul_precision", precision, allowed)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        torch.set_float32_matmul_precision(self.precision)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            atexit.register(destroy_process_group)


def destroy_process_group() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()

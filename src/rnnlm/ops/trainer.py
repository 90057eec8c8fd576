"""The Trainer of a run: built from its config (what Lightning refuses in one line) or bare
(scoring, benchmarks); known noise silenced, SLURM, the matmul precision, the process group."""

from __future__ import annotations

import atexit
import difflib
import inspect
import logging
import re
import warnings

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from pytorch_lightning.plugins.environments import SLURMEnvironment
from pytorch_lightning.utilities.exceptions import MisconfigurationException

from rnnlm.errors import UserError, require_choice

# Lightning's tips, its tensor-core advice (here the `matmul_precision` setting), and the
# models' own callbacks (configure_callbacks) meeting themselves again in trainer.test.
NOISE = (
    "\N{ELECTRIC LIGHT BULB} Tip:",
    "You are using a CUDA device",
    "The following callbacks returned in `LightningModule.configure_callbacks`",
)


def drop_noise(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith(NOISE)


def quiet_known_noise(verbose: bool = False) -> None:
    """Silence what other libraries print that does not apply here: `NOISE` always; Lightning's
    INFO lines (devices, restored checkpoints, why fit stopped) unless `verbose` or
    `hydra.verbose=pytorch_lightning`: the run's own lines say them."""
    rank_zero = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    if drop_noise not in rank_zero.filters:
        rank_zero.addFilter(drop_noise)
    # Lightning sets its own logger to INFO; hydra.verbose=pytorch_lightning sets DEBUG.
    chosen = logging.getLogger("pytorch_lightning").isEnabledFor(logging.DEBUG)
    rank_zero.setLevel(logging.NOTSET if verbose or chosen else logging.WARNING)
    # Batches are cut by tensor indexing in the main process: workers would only add overhead.
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    # A short text's few batches per epoch: the logger records the epoch's figures anyway.
    warnings.filterwarnings("ignore", ".*is smaller than the logging interval.*")
    # Raised inside Lightning 2.6 itself with torch >= 2.10; nothing a user can change.
    warnings.filterwarnings("ignore", ".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*")


def bare_trainer(**kwargs) -> pl.Trainer:
    """A Trainer with no logger, checkpoints, bar or summary (scoring, benchmarks, tests)."""
    off = ("logger", "enable_checkpointing", "enable_progress_bar", "enable_model_summary")
    # rnnlm's samplers shard the data themselves
    return pl.Trainer(**{**dict.fromkeys(off, False), "use_distributed_sampler": False, **kwargs})


def slurm_plugins() -> list:
    """Under SLURM, requeueing is submitit's: Lightning's SIGUSR1 handler would replace it and
    write hpc_ckpt files into the working folder that every job of a sweep shares."""
    return [SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else []


def build_trainer(trainer: DictConfig, **runtime) -> pl.Trainer:
    """`instantiate(trainer, **runtime)`; an argument `pl.Trainer` does not take (+trainer.KEY)
    or a value Lightning rejects (trainer.devices=0) in one line."""
    from hydra.utils import instantiate

    try:
        return instantiate(trainer, **runtime)
    except Exception as err:
        cause = err
        while cause.__cause__ is not None:
            cause = cause.__cause__
        unknown = re.search(r"unexpected keyword argument '(\w+)'", str(cause))
        if isinstance(cause, TypeError) and unknown:
            taken = list(inspect.signature(pl.Trainer).parameters)
            near = difflib.get_close_matches(unknown[1], taken, n=2, cutoff=0.8)
            hint = f": did you mean trainer.{' or trainer.'.join(near)}?" if near else ""
            raise UserError(
                f"trainer.{unknown[1]} is not an argument of pytorch_lightning.Trainer{hint}"
            ) from None
        if isinstance(cause, MisconfigurationException | ValueError):
            raise UserError(
                f"trainer settings refused by Lightning: {str(cause).splitlines()[0]}"
            ) from None
        raise


def distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


class ProcessGroupCleanup(pl.Callback):
    """Destroy the process group at a normal exit, before the interpreter tears down: left to
    finalization, gloo's threads may still hold Python objects and the rank aborts
    ("terminate called without an active exception"; pytorch/pytorch#190489)."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if distributed():
            atexit.register(destroy_process_group)


def destroy_process_group() -> None:
    if distributed():
        torch.distributed.destroy_process_group()


class MatmulPrecision(pl.Callback):
    """`torch.set_float32_matmul_precision` in every process (DDP spawn's too): `highest` is
    plain float32, the book's maths; `high` and `medium` allow TF32 or bfloat16 products."""

    def __init__(self, precision: str) -> None:
        allowed = ("highest", "high", "medium")
        self.precision = require_choice("matmul_precision", precision, allowed)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        torch.set_float32_matmul_precision(self.precision)

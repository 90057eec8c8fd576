"""The Trainer of a run: built from its config (what Lightning refuses said in one line) or
bare (scoring, benchmarks), its settings checked first, known warnings silenced, SLURM, the
matmul precision, the process group's cleanup."""

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


class DropLines(logging.Filter):
    """A logging filter that drops the records whose message starts with one of `starts`."""

    def __init__(self, *starts: str) -> None:
        super().__init__()
        self.starts = starts

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.starts)


def quiet_known_noise(verbose: bool = False) -> None:
    """Silence what other libraries print that does not apply here, at its source: Lightning's
    advertising tips and its tensor-core advice always; unless `verbose` (or a logging level
    of DEBUG for `pytorch_lightning`: `hydra.verbose=pytorch_lightning`), its INFO lines
    (devices found, checkpoints restored, why fit stopped), which the run's own lines say."""
    rank_zero = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    rank_zero.filters = [f for f in rank_zero.filters if not isinstance(f, DropLines)]
    # The tensor-core advice names a torch call: here it is the `matmul_precision` setting.
    noise = ["\N{ELECTRIC LIGHT BULB} Tip:", "You are using a CUDA device"]
    # The models' own callbacks (configure_callbacks) meet themselves again in trainer.test.
    noise += ["The following callbacks returned in `LightningModule.configure_callbacks`"]
    rank_zero.addFilter(DropLines(*noise))
    # Lightning sets its own logger to INFO; hydra.verbose=pytorch_lightning sets DEBUG.
    chosen = logging.getLogger("pytorch_lightning").isEnabledFor(logging.DEBUG)
    rank_zero.setLevel(logging.NOTSET if verbose or chosen else logging.WARNING)
    quiet_known_warnings()


def quiet_known_warnings() -> None:
    """Silence Lightning warnings that do not apply here."""
    # Batches are cut by tensor indexing in the main process: workers would only add overhead.
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    # A short text's few batches per epoch: the logger records the epoch's figures anyway.
    warnings.filterwarnings("ignore", ".*is smaller than the logging interval.*")
    # Raised inside Lightning 2.6 itself with torch >= 2.10; nothing a user can change.
    warnings.filterwarnings("ignore", ".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*")


def bare_trainer(**kwargs) -> pl.Trainer:
    """A Trainer with no logger, checkpoints, bar or summary (scoring, benchmarks, tests);
    rnnlm's WindowSampler shards the data itself."""
    quiet = dict(
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
    )
    return pl.Trainer(**{**quiet, **kwargs})


def slurm_plugins() -> list:
    """Under SLURM, requeueing on timeout is submitit's (hydra/launcher=slurm,
    max_num_timeout): Lightning's own SIGUSR1 handler would replace submitit's and write
    hpc_ckpt files into the working folder, shared by every job of a sweep."""
    return [SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else []


def build_trainer(trainer: DictConfig, **runtime) -> pl.Trainer:
    """`instantiate(trainer, **runtime)`, with what Lightning refuses said in one line: an
    argument `pl.Trainer` does not take (a key added with +trainer.KEY), or a value Lightning
    rejects (e.g. trainer.devices=0)."""
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


class ProcessGroupCleanup(pl.Callback):
    """In every process of a distributed run: destroy the process group when the process exits
    normally, before the interpreter tears down. Lightning leaves the group to the interpreter's
    finalization, where gloo's worker threads may still hold Python objects and the rank aborts
    ("terminate called without an active exception"; pytorch/pytorch#190489)."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            atexit.register(destroy_process_group_if_any)


def destroy_process_group_if_any() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


MATMUL_PRECISIONS = ("highest", "high", "medium")


class MatmulPrecision(pl.Callback):
    """`torch.set_float32_matmul_precision(precision)` in every process of the run (DDP spawn's
    too): `highest` is plain float32, the book's maths; `high` and `medium` let GPUs that have
    them use TF32 or bfloat16 products, faster and less exact."""

    def __init__(self, precision: str) -> None:
        self.precision = require_choice("matmul_precision", precision, MATMUL_PRECISIONS)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        torch.set_float32_matmul_precision(self.precision)

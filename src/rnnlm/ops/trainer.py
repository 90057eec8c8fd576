"""The Trainer of a run: built from its config with what Lightning refuses said in one line,
without extras (scoring, benchmarks), its settings checked before a run, known warnings
silenced, SLURM, the matmul precision, and the process group's cleanup."""

from __future__ import annotations

import atexit
import difflib
import inspect
import logging
import os
import re
import warnings

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from pytorch_lightning.plugins.environments import SLURMEnvironment
from pytorch_lightning.utilities.exceptions import MisconfigurationException

from rnnlm.errors import UserError, require_count
from rnnlm.ops.cli import in_multirun  # the Hydra mode query (no Lightning import)


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


def check_run_settings(cfg: DictConfig) -> None:
    """Settings Lightning would accept silently or fail on with a traceback, refused in one
    line before anything is built."""
    require_count("seed", cfg.get("seed"), minimum=0)
    trainer = cfg.trainer
    if in_multirun() and trainer.get("strategy") == "ddp" and not SLURMEnvironment.detect():
        raise UserError(
            "trainer.strategy=ddp inside a multirun (-m) would re-run the whole sweep in every "
            "rank: use trainer=ddp_spawn for sweeps on one node, or hydra/launcher=slurm, "
            "which starts one SLURM task per device"
        )
    epochs = trainer.get("max_epochs")
    if epochs is not None:  # -1 would train forever; bound a run by time with trainer.max_time
        require_count("trainer.max_epochs", epochs)
    clip = trainer.get("gradient_clip_val")
    if clip is not None and (
        isinstance(clip, bool) or not isinstance(clip, int | float) or clip <= 0
    ):
        raise UserError(
            f"trainer.gradient_clip_val={clip!r} is not allowed: it must be a number > 0, "
            "or null for no clipping"
        )
    if cfg.data.get("sampling") == "sequential" and trainer.get("use_distributed_sampler"):
        raise UserError(
            "data.sampling=sequential with trainer.use_distributed_sampler=true is not allowed: "
            "Lightning's sampler would deal the streamed batches out of order, and a state "
            "would be carried into a batch it does not precede; rnnlm shards the streams "
            "itself: set trainer.use_distributed_sampler=false"
        )
    accelerator, devices = str(trainer.get("accelerator", "auto")), trainer.get("devices", "auto")
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise UserError(
            f"trainer.accelerator={accelerator} but this machine has no CUDA GPU that torch "
            "can use: use trainer=cpu, or trainer.accelerator=auto"
        )
    if isinstance(devices, int) and not isinstance(devices, bool) and devices < 1 and devices != -1:
        raise UserError(
            f"trainer.devices={devices} is not allowed: give a number of devices >= 1, -1 for "
            "all of them, a list of device indices, or auto"
        )
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    check_cuda_graphs(cfg.get("model") or {}, accelerator, on_cpu)
    cores = os.cpu_count() or 1
    if on_cpu and isinstance(devices, int) and not isinstance(devices, bool) and devices > cores:
        raise UserError(
            f"trainer.devices={devices} CPU processes on a machine with {cores} cores: each "
            f"process needs a core of its own; use at most trainer.devices={cores}"
        )


def check_cuda_graphs(model: DictConfig, accelerator: str, on_cpu: bool) -> None:
    """`model.cuda_graphs=true` replays recorded CUDA graphs: a CUDA device is needed."""
    if not model.get("cuda_graphs"):
        return
    if model.get("compile"):
        raise UserError(
            "model.cuda_graphs=true and model.compile=true are not allowed together: CUDA "
            "graphs compile the batch loss themselves; give one of them"
        )
    if not torch.cuda.is_available():
        raise UserError(
            "model.cuda_graphs=true needs a CUDA GPU and this machine has none that torch can "
            f"use (torch {torch.__version__}): leave model.cuda_graphs=false"
        )
    if on_cpu or accelerator not in ("gpu", "cuda", "auto"):
        raise UserError(
            f"model.cuda_graphs=true with trainer.accelerator={accelerator}: CUDA graphs run on "
            "a GPU; give trainer=gpu, or leave model.cuda_graphs=false"
        )


def local_processes(trainer: DictConfig) -> int:
    """Processes of one run on this machine: the DDP ranks of a CPU run, else 1."""
    devices = trainer.get("devices", "auto")
    on_cpu = str(trainer.get("accelerator", "auto")) == "cpu" or not torch.cuda.is_available()
    if on_cpu and isinstance(devices, int) and not isinstance(devices, bool):
        return max(1, devices)
    return 1


def available_memory() -> int | None:
    """Bytes the kernel says a new allocation can have (Linux), else None."""
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None


def check_memory(batch_size: int, num_steps: int, model: pl.LightningModule) -> None:
    """Refuse a batch whose activations cannot fit, before the first allocation, instead of
    the kernel killing the run minutes later. A rough upper estimate in float32: per token
    the logits with their softmax and gradient (3 x vocabulary), the input row, and per layer
    the saved states and gates (8 x hidden units: the LSTM's four gates, cell and output)."""
    available = available_memory()
    if available is None:
        return
    rnn = model.rnn
    layers = getattr(getattr(rnn, "rnn", None), "num_layers", 1)
    outputs = getattr(model, "vocab_size", 1)  # the scores per token (a regression: one)
    per_token = 3 * outputs + rnn.num_inputs + 8 * rnn.num_hiddens * layers
    needed = 4 * batch_size * num_steps * per_token
    if needed > available:
        raise UserError(
            f"one batch of data.batch_size={batch_size} x data.num_steps={num_steps} needs "
            f"about {needed / 2**30:.1f} GiB for the model's activations, and this machine has "
            f"{available / 2**30:.1f} GiB available: lower data.batch_size or data.num_steps"
        )


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
        if precision not in MATMUL_PRECISIONS:
            raise UserError(
                f"matmul_precision={precision!r} is not allowed: use one of {MATMUL_PRECISIONS}"
            )
        self.precision = precision

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        torch.set_float32_matmul_precision(self.precision)

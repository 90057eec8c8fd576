"""A run's settings checked before anything is built: what Lightning would accept silently or
fail on with a traceback, and a batch too large for the machine's memory, each in one line."""

from __future__ import annotations

import os

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from pytorch_lightning.plugins.environments import SLURMEnvironment

from rnnlm.errors import UserError, require_count, require_number
from rnnlm.ops.cli import in_multirun  # the Hydra mode query (no Lightning import)


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
    if clip is not None:
        require_number("trainer.gradient_clip_val", clip, why=", or null for no clipping")
    if cfg.data.get("sampling") == "sequential" and trainer.get("use_distributed_sampler"):
        raise UserError(
            "data.sampling=sequential with trainer.use_distributed_sampler=true is not allowed: "
            "Lightning's sampler would deal the streamed batches out of order, and a state "
            "would be carried into a batch it does not precede; rnnlm shards the streams "
            "itself: set trainer.use_distributed_sampler=false"
        )
    check_devices(cfg)


def check_devices(cfg: DictConfig) -> None:
    """The accelerator and the devices this machine can give the run."""
    trainer = cfg.trainer
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

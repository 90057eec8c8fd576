"""The Trainer's settings that Lightning would accept silently or fail on with a traceback, and a
batch too large for the machine's memory, each refused in one line before anything is built."""

from __future__ import annotations

import os

import torch
from omegaconf import DictConfig
from pytorch_lightning.plugins.environments import SLURMEnvironment

from rnnlm.errors import UserError, require_count, require_number
from rnnlm.ops.cli import in_multirun  # the Hydra mode query (no Lightning import)


def check_run_settings(cfg: DictConfig) -> None:
    require_count("seed", cfg.get("seed"), minimum=0)
    trainer = cfg.trainer
    if in_multirun() and trainer.get("strategy") == "ddp" and not SLURMEnvironment.detect():
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
            "Lightning's sampler would deal the streamed batches out of order, and a state "
            "would be carried into a batch it does not precede; rnnlm shards the streams "
            "itself: set trainer.use_distributed_sampler=false"
        )
    check_devices(cfg)


def check_devices(cfg: DictConfig) -> None:
    """The accelerator and the devices this machine can give the run."""
    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    devices, cuda = cfg.trainer.get("devices", "auto"), torch.cuda.is_available()
    if accelerator in ("gpu", "cuda") and not cuda:
        raise UserError(
            f"trainer.accelerator={accelerator} but this machine has no CUDA GPU that torch "
            "can use: use trainer=cpu, or trainer.accelerator=auto"
        )
    count = devices if isinstance(devices, int) and not isinstance(devices, bool) else None
    if count is not None and count < 1 and count != -1:
        raise UserError(
            f"trainer.devices={devices} is not allowed: give a number of devices >= 1, -1 for "
            "all of them, a list of device indices, or auto"
        )
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not cuda)
    if on_cpu and count is not None and count > (cores := os.cpu_count() or 1):
        raise UserError(
            f"trainer.devices={devices} CPU processes on a machine with {cores} cores: each "
            f"process needs a core of its own; use at most trainer.devices={cores}"
        )
    model = cfg.get("model") or {}
    if not model.get("cuda_graphs"):
        return
    if model.get("compile"):
        raise UserError(
            "model.cuda_graphs=true and model.compile=true are not allowed together: CUDA "
            "graphs compile the batch loss themselves; give one of them"
        )
    if not cuda:
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


def check_memory(batch_size: int, num_steps: int, model) -> None:
    """Refuse a batch whose activations cannot fit (Linux's MemAvailable), before the kernel
    kills the run minutes later. A rough upper estimate in float32: per token the logits with
    softmax and gradient (3 x vocabulary), the input row, and per layer 8 x hidden units (the
    LSTM's four gates, cell and output)."""
    try:
        with open("/proc/meminfo") as f:
            available = int(dict(line.split(":", 1) for line in f)["MemAvailable"].split()[0])
    except (OSError, KeyError, ValueError):
        return
    available *= 1024
    rnn = model.rnn
    layers = getattr(getattr(rnn, "rnn", None), "num_layers", 1)
    outputs = getattr(model, "vocab_size", 1)  # the scores per token (a regression: one)
    needed = (
        4 * batch_size * num_steps * (3 * outputs + rnn.num_inputs + 8 * rnn.num_hiddens * layers)
    )
    if needed > available:
        raise UserError(
            f"one batch of data.batch_size={batch_size} x data.num_steps={num_steps} needs "
            f"about {needed / 2**30:.1f} GiB for the model's activations, and this machine has "
            f"{available / 2**30:.1f} GiB available: lower data.batch_size or data.num_steps"
        )

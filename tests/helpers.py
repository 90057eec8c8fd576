"""Helpers shared by the test modules."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytorch_lightning as pl
import torch


class ThreadProbe(pl.Callback):
    """Records, in every process of a run, the CPU threads torch computes with and the
    OMP_NUM_THREADS it passes on, as <folder>/threads-<rank>.json.

    Added from the command line: +callbacks.probe._target_=tests.helpers.ThreadProbe
    +callbacks.probe.folder=DIR
    """

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        seen = {"torch": torch.get_num_threads(), "env": os.environ.get("OMP_NUM_THREADS")}
        (self.folder / f"threads-{trainer.global_rank}.json").write_text(json.dumps(seen))


def thread_probes(folder: Path) -> dict[int, dict]:
    """What every rank's `ThreadProbe` recorded, by rank."""
    return {
        int(p.stem.split("-")[1]): json.loads(p.read_text()) for p in folder.glob("threads-*.json")
    }


def two_cpu_processes(trainer: str, tiny_corpus: Path) -> list[str]:
    """train.py arguments for the tiny run as two CPU processes (`trainer`: ddp or ddp_spawn)."""
    from .conftest import TINY_OVERRIDES

    fixed = [o for o in TINY_OVERRIDES if "accelerator" not in o and "devices" not in o]
    devices = ["trainer.accelerator=cpu", "trainer.devices=2"]
    return [f"trainer={trainer}", *devices, f"data.path={tiny_corpus}", *fixed]


def refused(task: str, *overrides: str, run_dir: Path | None = None) -> str:
    """The `UserError` message a task raises for `overrides`, in this process: what the CLI
    prints after `error: ` (one CLI test per exit-code path checks that part)."""
    import pytest

    from rnnlm.errors import UserError

    from .conftest import compose_config

    cfg = compose_config(*overrides, name=task)
    with pytest.raises(UserError) as err:
        if task == "train":
            from rnnlm.train import train

            train(cfg, run_dir)
        elif task == "generate":
            from rnnlm.generate import generate

            generate(cfg)
        else:
            from rnnlm.evaluate import evaluate

            evaluate(cfg)
    return str(err.value)

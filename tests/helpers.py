"""Helpers shared by the test modules."""

from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path

import pytorch_lightning as pl
import torch

from rnnlm.rnn import core  # noqa: F401  (the tests' models, as the benchmarks build theirs)


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


def built(cfg, output_dir: Path) -> tuple:
    """What the train task builds before `fit`: the data, the model and the Trainer."""
    from rnnlm.ops.trainer import build_trainer
    from rnnlm.train import build_model, data, observers

    dm = data(cfg)
    return (
        dm,
        build_model(cfg, dm, None),
        build_trainer(cfg, output_dir, *observers(cfg, output_dir)),
    )


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


def events(run_dir: Path):
    """A TensorBoard run (a folder, or one events file), read."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    accumulator.Reload()
    return accumulator


def scalars(run_dir: Path) -> dict[str, list[float]]:
    """Every scalar of a run: tag -> its values in step order."""
    run = events(run_dir)
    return {tag: [e.value for e in run.Scalars(tag)] for tag in run.Tags()["scalars"]}


def hparams_plugin(run_dir: Path) -> dict:
    """The HPARAMS records of one TensorBoard run, by tag."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = events(run_dir).PluginTagToContent("hparams")
    return {tag: plugin_data_pb2.HParamsPluginData.FromString(c) for tag, c in content.items()}


def read_rows(path: Path) -> list[dict]:
    """A sweep's summary.csv."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


HYDRA_HINT = "Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace."


def error_line(out: subprocess.CompletedProcess) -> str:
    """The CLI's contract for a mistake: exit code 1 and the message on one line, as Hydra prints
    a `UserError` (then its hint), no traceback."""
    assert out.returncode == 1, out.stderr[-2000:]
    assert "Traceback" not in out.stderr, out.stderr[-2000:]
    lines = [line for line in out.stderr.strip().splitlines() if line.strip()]
    return lines[-2] if lines[-1] == HYDRA_HINT else lines[-1]


def said(out: subprocess.CompletedProcess) -> list[str]:
    """What a refused run printed: nothing on stdout; on stderr the message, with Hydra's line
    naming the job's overrides before it and its hint after it."""
    assert out.stdout.strip() == "", out.stdout
    lines = [line for line in out.stderr.splitlines() if line.strip() and line != HYDRA_HINT]
    return [line for line in lines if not line.startswith("Error executing job with overrides")]


def assert_one_line_error(out: subprocess.CompletedProcess, *fragments: str) -> None:
    message = error_line(out)
    for fragment in fragments:
        assert fragment in message, message


# The tiny run on contiguous parts read as streams (data.sampling=sequential).
SEQUENTIAL = [
    "data.split=contiguous",
    "data.sampling=sequential",
    "data.batch_size=4",
    "data.eval_streams=3",
]


def books_predict(model, prefix, num_preds, vocab):
    """d2l's RNNLMScratch.predict, written out (one-hot input, warm-up, argmax)."""
    state, outputs = None, [vocab[prefix[0]]]
    for i in range(len(prefix) + num_preds - 1):
        X = torch.tensor([[outputs[-1]]])
        rnn_outputs, state = model.rnn(model.one_hot(X), state)
        if i < len(prefix) - 1:
            outputs.append(vocab[prefix[i + 1]])
        else:
            Y = model.output_layer(rnn_outputs)
            outputs.append(int(torch.reshape(torch.argmax(Y, axis=2), (1,))))
    return "".join([vocab.idx_to_token[i] for i in outputs])


def tokens(size: int) -> list[str]:
    """A vocabulary of `size` tokens as the models take it (sorted, `<unk>` included)."""
    from rnnlm.vocab import Vocab

    return Vocab(reserved_tokens=[f"t{i:03d}" for i in range(size - 1)]).idx_to_token


def scored(model, loader) -> tuple[float, int]:
    """`test/loss` and `test/tokens` of `model` over `loader`, through Lightning's test loop."""
    from rnnlm.ops.trainer import bare_trainer

    trainer = bare_trainer(accelerator="cpu", devices=1)
    (metrics,) = trainer.test(model, dataloaders=loader, verbose=False)
    return metrics["test/loss"], int(metrics["test/tokens"])

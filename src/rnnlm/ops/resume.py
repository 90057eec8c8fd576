"""Carrying a run on: checkpoints written whole, `ckpt_path=last`, the checks before resuming,
what a stopped run says, and what a finished run's checkpoints tell."""

from __future__ import annotations

import contextlib
import io
import shlex
import signal
import sys
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO
from pytorch_lightning.utilities.exceptions import SIGTERMException

from rnnlm.checkpoints import MODEL_KINDS, read_checkpoint
from rnnlm.errors import UserError
from rnnlm.ops.files import flatten, write_bytes
from rnnlm.vocab import TextFormat


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, with the file written in its own folder and renamed
    over the old one (`rnnlm.ops.files`): Lightning's own goes through fsspec's transaction,
    which writes to the system's temp folder and moves the file, a copy when the run folder
    is on another filesystem, so a full disk or a kill leaves a truncated checkpoint."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        if "://" in str(path):  # object storage: fsspec's writer is the one that can
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()  # serialised first: the file then gets plain writes and OSErrors
        torch.save(checkpoint, buffer)
        write_bytes(path, buffer.getbuffer(), kept=last_good(path))


def last_good(path: Path) -> str:
    """What a failed write of `path` leaves whole, as the error says it."""
    if path.is_file():
        return f": {path} is kept as it was, the last good checkpoint"
    others = sorted(path.parent.glob("*.ckpt"), key=lambda p: p.stat().st_mtime)
    if others:
        return f": the last good checkpoint is {others[-1]}"
    return ": no checkpoint had been written yet"


def last_checkpoint(output_dir: Path) -> Path:
    """Where the `last_checkpoint` callback (conf/callbacks/default.yaml) writes in a run."""
    return output_dir / "checkpoints" / "last.ckpt"


def resume_path(ckpt_path: str | None, output_dir: Path) -> str | None:
    """`ckpt_path=last`: this run folder's own last.ckpt if there is one (a requeued or
    restarted job carries on), else a fresh start; any other value is a checkpoint file."""
    if ckpt_path != "last":
        return ckpt_path
    last = last_checkpoint(output_dir)
    if last.is_file():
        return str(last)
    print(f"ckpt_path=last: there is no {last} yet, so this run starts fresh")
    return None


def check_resumable(
    ckpt_path: str, model: pl.LightningModule, inputs: dict, max_epochs: int | None
) -> None:
    """Resuming needs a checkpoint of this kind of model, built from the same data (`inputs`:
    what the data module gives the model, e.g. the vocabulary), with epochs left to train."""
    checkpoint = read_checkpoint(ckpt_path)
    saved_class, this_class = checkpoint["rnnlm_class"].rpartition(".")[2], type(model).__name__
    if saved_class != this_class:
        raise UserError(
            f"ckpt_path={ckpt_path!r} holds a {MODEL_KINDS.get(saved_class, '')} "
            f"({saved_class}), and this run builds a {MODEL_KINDS.get(this_class, '')} "
            f"({this_class}): resume with the model it was trained with"
        )
    check_same_data(ckpt_path, checkpoint["hyper_parameters"], inputs)
    check_same_shapes(ckpt_path, checkpoint, model)
    done = checkpoint.get("epoch", -1) + 1
    if max_epochs is not None and done >= max_epochs:
        raise UserError(
            f"ckpt_path={ckpt_path!r} has already trained {done} epochs and "
            f"trainer.max_epochs={max_epochs}: nothing is left to train; raise "
            "trainer.max_epochs to carry on"
        )


def check_same_data(ckpt_path: str, saved: dict, inputs: dict) -> None:
    """The data gives the model what the checkpoint's run gave it (vocabulary, text format)."""
    for key, value in inputs.items():
        if key == "text":
            was = TextFormat.of(saved.get(key))
            if was != TextFormat.of(value):
                raise UserError(
                    f"ckpt_path={ckpt_path!r} was trained with {was}, and this run reads the "
                    f"text with {TextFormat.of(value)}: resume with the settings it was trained "
                    "with"
                )
        elif saved.get(key) != value:
            what = (
                f"vocabulary ({len(saved.get(key) or [])} tokens, the data now has {len(value)})"
                if key == "vocab"
                else key
            )
            raise UserError(
                f"ckpt_path={ckpt_path!r} was trained with another {what}: resume with the "
                "data.path it was trained on"
            )


def epochs_trained(trainer: pl.Trainer, output_dir: Path) -> int:
    """Epochs finished: the last checkpoint's count when there is one (a ddp_spawn parent's
    trainer does not get its workers' count back), else the trainer's."""
    last = last_checkpoint(output_dir)
    if last.is_file():
        return read_checkpoint(last).get("epoch", -1) + 1
    return trainer.current_epoch


def stopped(trainer: pl.Trainer, output_dir: Path, signum: signal.Signals) -> None:
    """SIGTERM (`kill`, a scheduler's preemption) or SIGINT (Ctrl-C): Lightning stops cleanly
    but would exit with status 0 (SIGTERM) or 1, saying nothing of what is kept. Say it, with
    the command that carries on, and exit 128 + the signal's number."""
    last = last_checkpoint(output_dir)
    kept = (
        f"{last} holds the last finished epoch: carry on with {carry_on_command(output_dir)}"
        if last.is_file()
        else "no epoch had finished, no checkpoint was written"
    )
    print(
        f"error: training was stopped by {signum.name} in epoch {trainer.current_epoch}; {kept}",
        file=sys.stderr,
    )
    raise SystemExit(128 + signum)


def carry_on_command(output_dir: Path) -> str:
    """The command line of this run, resuming from its folder's last.ckpt."""
    from hydra.core.hydra_config import HydraConfig

    given = []
    if HydraConfig.initialized():
        given = [
            arg
            for arg in HydraConfig.get().overrides.task
            if not arg.startswith(("ckpt_path=", "hydra.run.dir="))
        ]
    return shlex.join(
        ["python", "train.py", *given, "ckpt_path=last", f"hydra.run.dir={output_dir}"]
    )


def check_same_shapes(ckpt_path: str, checkpoint: dict, model: pl.LightningModule) -> None:
    """The checkpoint's weights fit the model built now; else one line with the settings
    that differ (e.g. `model.rnn.num_hiddens 32 in the checkpoint, 64 now`)."""
    saved = {k: tuple(v.shape) for k, v in checkpoint["state_dict"].items()}
    now = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if saved == now:
        return
    before, after = flatten(dict(checkpoint["hyper_parameters"])), flatten(dict(model.hparams))
    differ = [
        f"model.{k} {before.get(k)} in the checkpoint, {after.get(k)} now"
        for k in sorted(before.keys() | after.keys())
        if before.get(k) != after.get(k) and k != "vocab"
    ]
    shown = "; ".join(differ[:3]) or "the weights' shapes differ"
    raise UserError(
        f"ckpt_path={ckpt_path!r} holds another shape of model ({shown}): resume with the "
        "model settings it was trained with"
    )


def fit(trainer: pl.Trainer, model, dm, ckpt_path, output_dir: Path) -> None:
    """`trainer.fit`, with what a stopped run says and its exit status (`stopped`)."""
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

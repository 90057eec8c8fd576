"""Carrying a run on: checkpoints written whole, `ckpt_path=last`, the checks before resuming,
and what a stopped run says."""

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
    """Lightning's checkpoint writer, writing in the checkpoint's own folder then renaming:
    Lightning's goes through fsspec, which writes in the system's temp folder and then copies
    across filesystems, so a full disk or a kill leaves a truncated checkpoint."""

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
    """`ckpt_path=last`: this run folder's last.ckpt if there is one, else a fresh start."""
    if ckpt_path != "last":
        return ckpt_path
    last = last_checkpoint(output_dir)
    if last.is_file():
        return str(last)
    print(f"ckpt_path=last: there is no {last} yet, so this run starts fresh")
    return None


def check_resumable(ckpt_path: str, model, inputs: dict, max_epochs: int | None) -> None:
    """Resuming needs a checkpoint of this kind of model, of the same data (`inputs`: the
    vocabulary and text format), with the same weight shapes and epochs left to train."""
    checkpoint = read_checkpoint(ckpt_path)
    saved, this = checkpoint["rnnlm_class"].rpartition(".")[2], type(model).__name__
    if saved != this:
        raise UserError(
            f"ckpt_path={ckpt_path!r} holds a {MODEL_KINDS.get(saved, '')} ({saved}), and this "
            f"run builds a {MODEL_KINDS.get(this, '')} ({this}): resume with the model it was "
            "trained with"
        )
    hparams = checkpoint["hyper_parameters"]
    was, now = TextFormat.of(hparams.get("text")), TextFormat.of(inputs.get("text"))
    if was != now:
        raise UserError(
            f"ckpt_path={ckpt_path!r} was trained with {was}, and this run reads the text with "
            f"{now}: resume with the settings it was trained with"
        )
    if "vocab" in inputs and hparams.get("vocab") != inputs["vocab"]:
        raise UserError(
            f"ckpt_path={ckpt_path!r} was trained with another vocabulary "
            f"({len(hparams.get('vocab') or [])} tokens, the data now has "
            f"{len(inputs['vocab'])}): resume with the data.path it was trained on"
        )
    check_same_shapes(ckpt_path, checkpoint, model)
    done = checkpoint.get("epoch", -1) + 1
    if max_epochs is not None and done >= max_epochs:
        raise UserError(
            f"ckpt_path={ckpt_path!r} has already trained {done} epochs and "
            f"trainer.max_epochs={max_epochs}: nothing is left to train; raise "
            "trainer.max_epochs to carry on"
        )


def check_same_shapes(ckpt_path: str, checkpoint: dict, model: pl.LightningModule) -> None:
    """The checkpoint's weights fit the model; else the settings that differ, in one line."""
    saved = {k: tuple(v.shape) for k, v in checkpoint["state_dict"].items()}
    if saved == {k: tuple(v.shape) for k, v in model.state_dict().items()}:
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


def epochs_trained(trainer: pl.Trainer, output_dir: Path) -> int:
    """The last checkpoint's epochs when there is one (a ddp_spawn parent's trainer does not get
    its workers' count back), else the trainer's."""
    last = last_checkpoint(output_dir)
    return read_checkpoint(last).get("epoch", -1) + 1 if last.is_file() else trainer.current_epoch


def stopped(trainer: pl.Trainer, output_dir: Path, signum: signal.Signals) -> None:
    """SIGTERM or SIGINT: Lightning stops cleanly but exits 0 or 1 saying nothing of what is
    kept. Say it, with the command that carries on, and exit 128 + the signal's number."""
    from hydra.core.hydra_config import HydraConfig

    last = last_checkpoint(output_dir)
    given = HydraConfig.get().overrides.task if HydraConfig.initialized() else []
    given = [a for a in given if not a.startswith(("ckpt_path=", "hydra.run.dir="))]
    again = ["python", "train.py", *given, "ckpt_path=last", f"hydra.run.dir={output_dir}"]
    kept = (
        f"{last} holds the last finished epoch: carry on with {shlex.join(again)}"
        if last.is_file()
        else "no epoch had finished, no checkpoint was written"
    )
    print(
        f"error: training was stopped by {signum.name} in epoch {trainer.current_epoch}; {kept}",
        file=sys.stderr,
    )
    raise SystemExit(128 + signum)


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

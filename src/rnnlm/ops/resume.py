"""Carrying a run on: checkpoints written whole, `ckpt_path=last`, a checkpoint refused before
training when it cannot carry this run on, and what a stopped run says."""

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

from rnnlm.checkpoints import read_checkpoint
from rnnlm.errors import UserError
from rnnlm.files import flatten, write_bytes


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, writing in the checkpoint's own folder then renaming:
    Lightning's goes through fsspec, which writes in the system's temp folder and then copies
    across filesystems, so a full disk or a kill leaves a truncated checkpoint."""

    swept = False  # whether a killed writer's temporary files were removed from the folder

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        if "://" in str(path):  # object storage: fsspec's writer is the one that can
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not self.swept:  # once: the folder holds one live run (its lock)
            for leftover in path.parent.glob(".*.ckpt.*.tmp"):  # a killed writer's
                leftover.unlink(missing_ok=True)
            self.swept = True
        buffer = io.BytesIO()  # serialised first: the file then gets plain writes and OSErrors
        torch.save(checkpoint, buffer)
        write_bytes(path, buffer.getbuffer(), kept=last_good(path))


def last_good(path: Path) -> str:
    """What a failed write of `path` leaves whole, as the error says it (the folder is listed
    only when `path` is new)."""
    if path.is_file():
        return f": {path} is kept as it was, the last good checkpoint"
    others = sorted(path.parent.glob("*.ckpt"), key=lambda p: p.stat().st_mtime)
    return f": the last good checkpoint is {others[-1]}" if others else ": no checkpoint yet"


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


def check_resumable(ckpt_path: str, model: pl.LightningModule, max_epochs: int | None) -> None:
    """A checkpoint carries this run on only if it holds the same class of model, read its text
    the same way into the same vocabulary, has the same weight shapes, and has epochs left."""
    checkpoint = read_checkpoint(ckpt_path)
    before = flatten({"class": checkpoint["rnnlm_class"], **checkpoint["hyper_parameters"]})
    now = flatten(
        {"class": f"{type(model).__module__}.{type(model).__qualname__}", **model.hparams}
    )
    shapes = {k: tuple(v.shape) for k, v in checkpoint["state_dict"].items()}
    reshaped = shapes != {k: tuple(v.shape) for k, v in model.state_dict().items()}
    differ = [
        f"another vocabulary: {len(before.get(k) or [])} tokens, {len(now.get(k) or [])} now"
        if k == "vocab"
        else f"model.{k} {before.get(k)} in the checkpoint, {now.get(k)} now"
        for k in sorted(before.keys() | now.keys())
        if before.get(k) != now.get(k) and (reshaped or k.startswith(("class", "text", "vocab")))
    ]
    if reshaped and not differ:
        differ = ["the weights' shapes differ"]
    if differ:
        raise UserError(
            f"ckpt_path={ckpt_path!r} holds another model or text ({'; '.join(differ[:3])}): "
            "resume with the settings and data.path it was trained with"
        )
    done = checkpoint.get("epoch", -1) + 1
    if max_epochs is not None and done >= max_epochs:
        raise UserError(
            f"ckpt_path={ckpt_path!r} has already trained {done} epochs and "
            f"trainer.max_epochs={max_epochs}: nothing is left to train; raise "
            "trainer.max_epochs to carry on"
        )


def fit(trainer: pl.Trainer, model, dm, ckpt_path: str | None, output_dir: Path) -> None:
    """`trainer.fit`. Lightning stops cleanly on SIGINT or SIGTERM but exits 1 or 0 saying
    nothing of what is kept: this says it, with the command that carries on, and exits with
    128 + the signal's number."""
    from hydra.core.hydra_config import HydraConfig

    if signal.getsignal(signal.SIGINT) not in (signal.SIG_IGN, None):  # Ctrl-C: Lightning's
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        # Lightning raises SIGTERMException only once received_sigterm is set: one check below.
        with contextlib.suppress(SIGTERMException):
            trainer.fit(model, dm, ckpt_path=ckpt_path)
    except SystemExit:
        if not trainer.interrupted:
            raise
    if not (trainer.interrupted or trainer.received_sigterm):
        return
    signum = signal.SIGTERM if trainer.received_sigterm else signal.SIGINT
    given = HydraConfig.get().overrides.task if HydraConfig.initialized() else []
    given = [a for a in given if not a.startswith(("ckpt_path=", "hydra.run.dir="))]
    again = shlex.join(
        ["python", "train.py", *given, "ckpt_path=last", f"hydra.run.dir={output_dir}"]
    )
    last = last_checkpoint(output_dir)
    kept = f"{last} holds the last finished epoch: carry on with {again}"
    kept = kept if last.is_file() else "no epoch had finished, no checkpoint was written"
    print(
        f"error: training was stopped by {signum.name} in epoch {trainer.current_epoch}; {kept}",
        file=sys.stderr,
    )
    raise SystemExit(128 + signum)


def selected_checkpoint(trainer: pl.Trainer, metric: str) -> str | None:
    """The checkpoint that `metric` selected (with weight averaging: the averaged weights)."""
    for callback in trainer.checkpoint_callbacks:
        if callback.monitor == metric and callback.best_model_path:
            return callback.best_model_path
    return None

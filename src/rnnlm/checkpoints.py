"""Checkpoints written by train.py: written whole or not at all, read safely, and a model
rebuilt from one alone.

A checkpoint carries the model's class (`rnnlm_class`), its constructor arguments
(`hyper_parameters`, the core's as a `_target_` mapping) and its weights; it is read with
`weights_only=True`, so nothing in it is executed.
"""

from __future__ import annotations

import importlib
import io
from pathlib import Path

import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO

from rnnlm.errors import UserError
from rnnlm.files import write_bytes
from rnnlm.lm import RNNLMScratch


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, with the file written in its own folder and renamed
    over the old one (`rnnlm.files`): Lightning's own goes through fsspec's transaction,
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


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """A checkpoint written by rnnlm's train.py (loaded with `weights_only=True`)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"ckpt_path={str(path)!r} does not exist or is not a file")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception:
        # torch's own message would advise weights_only=False, which runs the file's code.
        raise UserError(
            f"ckpt_path={str(path)!r} is not a checkpoint written by rnnlm's train.py (torch "
            "cannot read it as a checkpoint)"
        ) from None
    needed = ("rnnlm_class", "hyper_parameters", "state_dict")
    missing = [k for k in needed if not isinstance(checkpoint, dict) or k not in checkpoint]
    if missing:
        raise UserError(
            f"ckpt_path={str(path)!r} is not a checkpoint written by rnnlm's train.py "
            f"(it has no {missing[0]!r})"
        )
    return checkpoint


# What each kind of checkpoint holds, as the errors name them.
MODEL_KINDS = {
    "RNNLMScratch": "character language model",
    "RNNLM": "character language model",
    "SineRNN": "sine-series regression model (experiment=sine)",
}


def load_lm(
    path: str | Path,
    map_location: str | torch.device = "cpu",
    checkpoint: dict | None = None,
    kind: type | None = None,
) -> RNNLMScratch:
    """Rebuild a model from a checkpoint alone (read from `path` unless given): a character
    language model, or another `kind` of the project's models (the sine series' regression)."""
    checkpoint = checkpoint if checkpoint is not None else read_checkpoint(path, map_location)
    class_path = checkpoint["rnnlm_class"]
    module, _, name = class_path.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    kind = kind or RNNLMScratch
    if not (isinstance(cls, type) and issubclass(cls, kind)):
        raise UserError(
            f"ckpt_path={str(path)!r} holds a {MODEL_KINDS.get(name, class_path)}, and this "
            f"needs a {MODEL_KINDS.get(kind.__name__, kind.__name__)}: give a checkpoint "
            "of that kind"
        )
    model = cls(**checkpoint["hyper_parameters"])
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()

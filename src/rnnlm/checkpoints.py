"""Checkpoints written by train.py, read with `weights_only=True` (nothing in them runs), and a
model rebuilt from one alone: its class (`rnnlm_class`), arguments (`hyper_parameters`) and
weights."""

from __future__ import annotations

import importlib
import pickle
from pathlib import Path

import torch

from rnnlm.errors import UserError
from rnnlm.lm import RNNLMScratch


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """A checkpoint written by rnnlm's train.py (loaded with `weights_only=True`)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"ckpt_path={str(path)!r} does not exist or is not a file")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError):
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
    "FastRNNLMScratch": "character language model",
    "FastRNNLM": "character language model",
    "SineRNN": "sine-series regression model (experiment=sine)",
}


def load_lm(
    path: str | Path,
    map_location: str | torch.device = "cpu",
    checkpoint: dict | None = None,
    kind: type | None = None,
) -> RNNLMScratch:
    """A model rebuilt from a checkpoint alone (read from `path` unless given): a language model,
    or another `kind` (the sine series')."""
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

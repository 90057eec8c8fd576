"""The optimizer and the rate scheduler as Hydra partials a model keeps (`_target_`, `_partial_:
true`), completed in `configure_optimizers`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate

from rnnlm.errors import UserError

# Optimizers as the models take them, partial configs: the book's SGD, and Adam.
SGD = {"_target_": "torch.optim.SGD", "_partial_": True}
ADAM = {"_target_": "torch.optim.Adam", "_partial_": True}


def plain(settings: Mapping[str, Any]) -> dict[str, Any]:
    """A config node as plain containers (interpolations resolved): what a checkpoint keeps."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(settings, DictConfig):
        return OmegaConf.to_container(settings, resolve=True)
    return dict(settings)


def partial_config(key: str, settings: Any) -> dict[str, Any]:
    """`settings` as the plain partial config a checkpoint keeps, built once now: a bad
    `_target_` fails before training."""
    if not isinstance(settings, Mapping) or "_target_" not in settings:
        group = "model/optimizer=sgd|adam" if key.endswith("optimizer") else f"{key}=null"
        raise UserError(
            f"{key}={settings!r} is not allowed: give a config with a _target_ class "
            f"(e.g. {group}, or {key}._target_=...)"
        )
    settings = plain(settings)
    try:
        instantiate({**settings, "_partial_": True})
    except InstantiationException as err:
        reason = str(err).splitlines()[0]
        raise UserError(
            f"{key}._target_={settings.get('_target_')!r} cannot be built ({reason}): give a "
            f"class of {'torch.optim' if key.endswith('optimizer') else 'torch.optim.lr_scheduler'}"
        ) from None
    return settings


def optimizers(
    optimizer: Mapping[str, Any],
    lr_scheduler: Mapping[str, Any] | None,
    parameters: Any,
    lr: float,
    monitor: str,
) -> Any:
    """`configure_optimizers`'s value: the optimizer, and the scheduler's (stepped each epoch;
    `ReduceLROnPlateau` watches `monitor`)."""
    built = instantiate(optimizer)(parameters, lr=lr)
    if lr_scheduler is None:
        return built
    scheduler = instantiate(lr_scheduler)(built)
    return {
        "optimizer": built,
        "lr_scheduler": {"scheduler": scheduler, "interval": "epoch", "monitor": monitor},
    }


def core_config(rnn: Mapping[str, Any]) -> dict[str, Any]:
    """The core's config as the checkpoint keeps it, without `num_inputs` (the model sets it)."""
    if not isinstance(rnn, Mapping) or "num_inputs" in rnn:
        raise UserError(
            "model.rnn is the core's config without num_inputs (the model feeds its core "
            "the embedding's size, else the vocabulary's), e.g. "
            "{'_target_': 'rnnlm.rnn.RNNScratch', 'num_hiddens': 32}"
        )
    return plain(rnn)

"""Settings that a model keeps as configs and completes later: the optimizer and the rate
scheduler as Hydra partials (`_target_`, `_partial_: true`, their arguments), completed with the
parameters in `configure_optimizers`, and the reading of older checkpoints' names for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hydra.utils import instantiate

from rnnlm.errors import UserError

# Older checkpoints name their optimizer; newer ones hold its config.
NAMED_OPTIMIZERS = {"sgd": "torch.optim.SGD", "adam": "torch.optim.Adam"}


def plain(settings: Mapping[str, Any]) -> dict[str, Any]:
    """A config node as plain containers (interpolations resolved): what a checkpoint keeps."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(settings, DictConfig):
        return OmegaConf.to_container(settings, resolve=True)
    return dict(settings)


def optimizer_config(optimizer: str | Mapping[str, Any], weight_decay: float) -> dict[str, Any]:
    """The optimizer as a partial config (`_target_`, `_partial_: true`, its arguments but the
    parameters and the rate); an older checkpoint's "sgd" or "adam" is read as that class."""
    if isinstance(optimizer, str):
        if optimizer not in NAMED_OPTIMIZERS:
            raise UserError(
                f"model.optimizer={optimizer!r} is not allowed: use model/optimizer=sgd or adam, "
                "or any torch.optim class with model.optimizer._target_=..."
            )
        target = NAMED_OPTIMIZERS[optimizer]
        return {"_target_": target, "_partial_": True, "weight_decay": weight_decay}
    return plain(optimizer)


def scheduler_config(scheduler: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The rate scheduler as a partial config; an older checkpoint's `{name: <class>, ...}`
    is read as that class of torch.optim.lr_scheduler."""
    if scheduler is None:
        return None
    scheduler = plain(scheduler)
    if "_target_" not in scheduler and "name" in scheduler:
        name = scheduler.pop("name")
        return {"_target_": f"torch.optim.lr_scheduler.{name}", "_partial_": True, **scheduler}
    return scheduler


def check_buildable(key: str, settings: Mapping[str, Any]) -> None:
    """Build the partial now, so a bad `_target_` fails before training, in one line."""
    try:
        instantiate({**settings, "_partial_": True})
    except Exception as err:
        reason = str(err).splitlines()[0]
        raise UserError(
            f"{key}._target_={settings.get('_target_')!r} cannot be built ({reason}): give a "
            f"class of {'torch.optim' if key.endswith('optimizer') else 'torch.optim.lr_scheduler'}"
        ) from None

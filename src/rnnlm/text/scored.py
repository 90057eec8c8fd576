"""The text a checkpoint scores (eval.py): read the way the checkpoint's run read its own."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from rnnlm.errors import UserError
from rnnlm.text.data import TextData


def data_settings(checkpoint: dict, overrides: DictConfig) -> dict:
    """The training run's data settings, with the non-null `overrides` on top."""
    saved = dict(checkpoint.get("datamodule_hyper_parameters", {}))
    saved.pop("seed", None)
    given = {k: v for k, v in OmegaConf.to_container(overrides).items() if v is not None}
    return {**saved, **given}


def text_for(model, checkpoint: dict, data: DictConfig, allow_unk: bool, path: str) -> TextData:
    """The text to score, read as the checkpoint's run read its own, with `data`'s non-null values
    on top; tokens outside its vocabulary refused unless `allow_unk`."""
    fmt = model.text_format
    for key, value in fmt.as_dict().items():
        given = data.get(key)
        if given is not None and given != value:
            raise UserError(
                f"data.{key}={given} is not how ckpt_path={path!r} read its text "
                f"({fmt}): leave data.{key} out, or give data.{key}={value}"
            )
    settings = {**data_settings(checkpoint, data), **fmt.as_dict()}
    dm = TextData(**settings, vocab=model.vocab.idx_to_token)
    dm.setup()
    if dm.num_unk and not allow_unk:
        outside = sorted(set(dm.corpus.counts) - set(model.vocab.idx_to_token))
        shown = ", ".join(repr(t) for t in outside[:10]) + (" ..." if len(outside) > 10 else "")
        raise UserError(
            f"data.path={str(dm.text_file())!r} has {dm.num_unk} {fmt.token_name}s outside the "
            f"checkpoint's vocabulary of {len(model.vocab)} tokens ({shown}): evaluate on "
            "text of the same vocabulary, or pass allow_unk=true to score them as <unk>"
        )
    return dm


def own_text(model, checkpoint: dict, path: str, scored: TextData, data: DictConfig) -> TextData:
    """The checkpoint's own text: `scored` itself when `data` changes nothing of it."""
    if data_settings(checkpoint, data) == data_settings(checkpoint, OmegaConf.create({})):
        return scored
    return text_for(model, checkpoint, OmegaConf.create({}), True, path)

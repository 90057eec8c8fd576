"""The eval task: a checkpoint's loss and perplexity (d2l.ai §9.3) on a part of its text or any
text, through Lightning's test or validation loop; beyond static: the scoring wing
(`rnnlm.scoring.run`)."""

from __future__ import annotations

import functools
import math

from omegaconf import DictConfig

from rnnlm.checkpoints import load_lm, read_checkpoint
from rnnlm.errors import UserError
from rnnlm.fast.threads import use_threads
from rnnlm.inside.page import check_page_settings, write_page
from rnnlm.ops.trainer import bare_trainer, quiet_known_noise
from rnnlm.scoring.ensemble import Ensemble, check_same_vocabulary
from rnnlm.scoring.run import beyond_static, check_settings, describe
from rnnlm.text.scored import own_text, text_for


def evaluate(cfg: DictConfig) -> float:
    """Print and return the perplexity of `cfg.ckpt_path` (one, or a list scored as an ensemble)
    on `cfg.split`."""
    paths = [cfg.ckpt_path] if isinstance(cfg.ckpt_path, str) else list(cfg.ckpt_path)
    if not paths:
        raise UserError("ckpt_path=[] is not allowed: give one checkpoint or a list of them")
    check_settings(cfg)  # before anything is read or scored
    if cfg.get("page"):
        check_page_settings(cfg, paths)
    checkpoint = read_checkpoint(paths[0], map_location=cfg.device)  # data settings: the first's
    models = [load_lm(paths[0], checkpoint=checkpoint)]
    models += [load_lm(path, map_location=cfg.device) for path in paths[1:]]
    check_same_vocabulary(models, paths)
    dm = text_for(models[0], checkpoint, cfg.data, cfg.allow_unk, paths[0])
    loader = dm.loader(cfg.split, whole=True)
    examples = loader.dataset
    use_threads(cfg.get("threads"))
    quiet_known_noise(cfg.get("verbose", False))
    trainer = bare_trainer(accelerator=cfg.device, devices=1)
    scored = models[0] if len(models) == 1 else Ensemble(models, paths)
    loss, tokens = score(trainer, scored, loader, cfg.split)
    fmt = models[0].text_format
    print(
        f"{dm.text_file()}: split={cfg.split} ({describe(examples, fmt.token_name)}), "
        f"{tokens:.0f} tokens scored, {dm.num_unk} {fmt.token_name}s outside the checkpoint's "
        "vocabulary (<unk>)"
    )
    print(f"loss {loss:.4f}  ppl {math.exp(loss):.4f}  bpc {loss / math.log(2):.4f}")
    ratio = dm.characters_per_token(cfg.split)
    if ratio is not None:  # word and byte models: bits per character of the text
        print(f"bits per character of the text {loss / math.log(2) * ratio:.4f} ({fmt})")
    if cfg.get("page"):
        write_page(cfg, models[0], dm, paths[0])
    own = functools.partial(own_text, models[0], checkpoint, paths[0], dm, cfg.data)
    return beyond_static(
        cfg, models, paths, dm, lambda m: score(trainer, m, loader, cfg.split)[0], loss, own
    )


def score(trainer, scored, loader, split: str) -> tuple[float, float]:
    """The mean loss and the tokens of a part: test through Lightning's test loop, others its
    validation loop."""
    if split == "test":
        (metrics,) = trainer.test(scored, dataloaders=loader, verbose=False)
        return metrics["test/loss"], metrics["test/tokens"]
    (metrics,) = trainer.validate(scored, dataloaders=loader, verbose=False)
    return metrics["val/loss"], metrics["val/tokens"]

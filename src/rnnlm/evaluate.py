"""The eval task: loss and perplexity of a checkpoint on a part of its text or any text
(d2l.ai §9.3: perplexity is exp of the mean cross-entropy per token), through Lightning's
test loop (`split=test`) or validation loop (any other part)."""

from __future__ import annotations

import math

from omegaconf import DictConfig, OmegaConf

from rnnlm import threads
from rnnlm.checkpoints import load_lm, read_checkpoint
from rnnlm.data import TimeMachine
from rnnlm.dynamic import Adaptation, dynamic_evaluation
from rnnlm.ensemble import Ensemble, check_same_vocabulary
from rnnlm.errors import UserError
from rnnlm.runtime import bare_trainer, quiet_known_noise, step_work
from rnnlm.streams import Streams
from rnnlm.windows import Windows


def data_settings(checkpoint: dict, overrides: DictConfig) -> dict:
    """The training run's data settings, with the non-null `overrides` on top."""
    saved = dict(checkpoint.get("datamodule_hyper_parameters", {}))
    saved.pop("seed", None)
    given = {k: v for k, v in OmegaConf.to_container(overrides).items() if v is not None}
    return {**saved, **given}


def evaluate(cfg: DictConfig) -> float:
    """Print and return the perplexity of `cfg.ckpt_path` on `cfg.split`: one checkpoint, or a
    list of them scored as an ensemble (the average of their probabilities)."""
    paths = [cfg.ckpt_path] if isinstance(cfg.ckpt_path, str) else list(cfg.ckpt_path)
    if not paths:
        raise UserError("ckpt_path=[] is not allowed: give one checkpoint or a list of them")
    checkpoint = read_checkpoint(paths[0], map_location=cfg.device)  # data settings: the first's
    models = [load_lm(paths[0], checkpoint=checkpoint)]
    models += [load_lm(path, map_location=cfg.device) for path in paths[1:]]
    check_same_vocabulary(models, paths)
    model = models[0]
    fmt = model.text_format
    for key, value in fmt.as_dict().items():
        given = cfg.data.get(key)
        if given is not None and given != value:
            raise UserError(
                f"data.{key}={given} is not how ckpt_path={paths[0]!r} read its text "
                f"({fmt}): leave data.{key} out, or give data.{key}={value}"
            )
    settings = {**data_settings(checkpoint, cfg.data), **fmt.as_dict()}
    dm = TimeMachine(**settings, vocab=model.vocab.idx_to_token)
    dm.setup()
    token = fmt.token_name
    if dm.num_unk and not cfg.allow_unk:
        outside = sorted(set(dm.corpus.counts) - set(model.vocab.idx_to_token))
        shown = ", ".join(repr(t) for t in outside[:10]) + (" ..." if len(outside) > 10 else "")
        raise UserError(
            f"data.path={str(dm.text_file())!r} has {dm.num_unk} {token}s outside the "
            f"checkpoint's vocabulary of {len(model.vocab)} tokens ({shown}): evaluate on "
            "text of the same vocabulary, or pass allow_unk=true to score them as <unk>"
        )
    loader = dm.loader(cfg.split, whole=True)
    examples = loader.dataset
    rows = examples.num_streams if isinstance(examples, Streams) else dm.batch_size
    threads.choose(cfg.threads, step_work(model, rows))
    quiet_known_noise(device_lines=True)
    trainer = bare_trainer(accelerator=cfg.device, devices=1)
    scored = model if len(models) == 1 else Ensemble(models, paths)
    # The test part through the test loop (as after training), any other through validation.
    if cfg.split == "test":
        (metrics,) = trainer.test(scored, dataloaders=loader, verbose=False)
        loss, tokens = metrics["test/loss"], metrics["test/tokens"]
    else:
        (metrics,) = trainer.validate(scored, dataloaders=loader, verbose=False)
        loss, tokens = metrics["val/loss"], metrics["val/tokens"]
    print(
        f"{dm.text_file()}: split={cfg.split} ({describe(examples, token)}), {tokens:.0f} tokens "
        f"scored, {dm.num_unk} {token}s outside the checkpoint's vocabulary (<unk>)"
    )
    print(f"loss {loss:.4f}  ppl {math.exp(loss):.4f}  bpc {loss / math.log(2):.4f}")
    ratio = dm.characters_per_token(cfg.split)
    if ratio is not None:  # word and byte models: bits per character of the text
        print(f"bits per character of the text {loss / math.log(2) * ratio:.4f} ({fmt})")
    if not cfg.get("dynamic"):
        return math.exp(loss)
    adaptation = Adaptation(**cfg.dynamic_eval)
    read_first = list(cfg.get("dynamic_eval_read_first") or [])
    loss, tokens, part = dynamic_evaluation(models, dm, cfg.split, adaptation, read_first)
    after = f", after learning from {' and '.join(read_first)}" if read_first else ""
    print(
        f"dynamic evaluation ({adaptation.method}, lr {adaptation.lr:g}, decay "
        f"{adaptation.decay:g}, segments of {adaptation.bptt}{after}; {describe(part, token)}), "
        f"{tokens} tokens scored"
    )
    print(f"loss {loss:.4f}  ppl {math.exp(loss):.4f}  bpc {loss / math.log(2):.4f}")
    return math.exp(loss)


def describe(examples: Windows | Streams, token: str = "character") -> str:
    if isinstance(examples, Streams):
        streams = "1 stream" if examples.num_streams == 1 else f"{examples.num_streams} streams"
        return f"{streams} of {examples.length} {token}s, state carried"
    return f"{len(examples)} windows of {examples.num_steps} {token}s"

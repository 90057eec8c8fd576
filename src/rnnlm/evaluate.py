"""The eval task: loss and perplexity of a checkpoint on a part of its text or any text
(d2l.ai §9.3: perplexity is exp of the mean cross-entropy per token), through Lightning's
test loop (`split=test`) or validation loop (any other part)."""

from __future__ import annotations

import math

from omegaconf import DictConfig, OmegaConf

from rnnlm.checkpoints import load_lm, read_checkpoint
from rnnlm.data import TimeMachine
from rnnlm.errors import UserError
from rnnlm.fast import threads
from rnnlm.fast.cpu import step_work
from rnnlm.ops.trainer import bare_trainer, quiet_known_noise
from rnnlm.scoring.dynamic import Adaptation, dynamic_evaluation
from rnnlm.scoring.ensemble import Ensemble, check_same_vocabulary
from rnnlm.scoring.ppm import PPMMixture, check_weight, ppm_log_probs
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
    quiet_known_noise(cfg.get("verbose", False))
    trainer = bare_trainer(accelerator=cfg.device, devices=1)
    mixture = ppm_mixture(cfg, dm, len(model.vocab), examples)
    adaptation = Adaptation(**cfg.dynamic_eval) if cfg.get("dynamic") else None
    read_first = parts_read_first(cfg.get("dynamic_eval_read_first", "auto"), cfg.split)
    scored = model if len(models) == 1 else Ensemble(models, paths)
    loss, tokens = score(trainer, scored, loader, cfg.split)
    print(
        f"{dm.text_file()}: split={cfg.split} ({describe(examples, token)}), {tokens:.0f} tokens "
        f"scored, {dm.num_unk} {token}s outside the checkpoint's vocabulary (<unk>)"
    )
    print(f"loss {loss:.4f}  ppl {math.exp(loss):.4f}  bpc {loss / math.log(2):.4f}")
    ratio = dm.characters_per_token(cfg.split)
    if ratio is not None:  # word and byte models: bits per character of the text
        print(f"bits per character of the text {loss / math.log(2) * ratio:.4f} ({fmt})")
    if mixture is not None:
        loss, _ = score(trainer, Ensemble(models, paths, mixture), loader, cfg.split)
        report_mixture(mixture, cfg.split, loss)
    if adaptation is None:
        return math.exp(loss)
    loss, tokens, part = dynamic_evaluation(models, dm, cfg.split, adaptation, read_first, mixture)
    after = f", after learning from {' and '.join(read_first)}" if read_first else ""
    print(
        f"dynamic evaluation ({adaptation.method}, lr {adaptation.lr:g}, decay "
        f"{adaptation.decay:g}, segments of {adaptation.bptt}{after}; {describe(part, token)}), "
        f"{tokens} tokens scored"
    )
    alone = mixture.model_loss() if mixture is not None else loss
    print(f"loss {alone:.4f}  ppl {math.exp(alone):.4f}  bpc {alone / math.log(2):.4f}")
    if mixture is not None:
        report_mixture(mixture, cfg.split, loss)
    return math.exp(loss)


def parts_read_first(value, split: str) -> list[str]:
    """The parts dynamic evaluation learns from before `split`: `auto` is the validation part
    before the test part (the text that precedes it, which the model never trained on, as the
    coders are given it) and nothing before any other part."""
    if value == "auto":
        return ["val"] if split == "test" else []
    names = list(value or [])
    # Learning from the scored text before scoring it would make it cheap (`all` holds them all).
    if any(name not in ("train", "val", "test") or split in (name, "all") for name in names):
        raise UserError(
            f"dynamic_eval_read_first={names} is not allowed: give auto, or a list of parts "
            f"among train, val and test other than split={split} ([] for split=all)"
        )
    return names


def score(trainer, scored, loader, split: str) -> tuple[float, float]:
    """The mean loss and the tokens of a part: the test part through Lightning's test loop (as
    after training), any other through its validation loop."""
    if split == "test":
        (metrics,) = trainer.test(scored, dataloaders=loader, verbose=False)
        return metrics["test/loss"], metrics["test/tokens"]
    (metrics,) = trainer.validate(scored, dataloaders=loader, verbose=False)
    return metrics["val/loss"], metrics["val/tokens"]


def ppm_mixture(cfg: DictConfig, dm: TimeMachine, vocab_size: int, examples):
    """The PPM model of `cfg.ppm_mixture` over the text up to the end of the scored part (each
    token predicted from the tokens before it), or None when `ppm_mixture.order` is null."""
    settings = cfg.get("ppm_mixture") or {}
    order = settings.get("order")
    if order is None:
        return None
    weight = check_weight(settings.get("weight"))
    if not isinstance(examples, Streams):
        raise UserError(
            f"ppm_mixture.order={order} needs split={cfg.split} read as streams: give "
            "data.sampling=sequential (the test part is always read as streams)"
        )
    stop = len(dm.corpus.chars) if cfg.split == "all" else dm.parts()[cfg.split][1]
    ids = dm.lut[dm.corpus.chars[:stop].long()].tolist()
    return PPMMixture(ppm_log_probs(ids, vocab_size, order), weight, examples.starts, order)


def report_mixture(mixture: PPMMixture, split: str, loss: float) -> None:
    print(
        f"mixed with PPM order {mixture.order} (the model's weight {mixture.weight:g}): "
        f"loss {loss:.4f}  ppl {math.exp(loss):.4f}  bpc {loss / math.log(2):.4f}"
    )
    if split == "val":  # weights are chosen on validation; never shown for the test part
        weight, best = mixture.best_weight()
        print(
            f"the weight this part would choose: ppm_mixture.weight={weight:.3f} "
            f"(bpc {best / math.log(2):.4f})"
        )


def describe(examples: Windows | Streams, token: str = "character") -> str:
    if isinstance(examples, Streams):
        streams = "1 stream" if examples.num_streams == 1 else f"{examples.num_streams} streams"
        return f"{streams} of {examples.length} {token}s, state carried"
    return f"{len(examples)} windows of {examples.num_steps} {token}s"

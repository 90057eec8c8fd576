"""What eval.py scores beyond the static figure: the PPM mixture (`ppm_mixture.order`) and
dynamic evaluation (`dynamic=true`), and the lines they print."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

from omegaconf import DictConfig

from rnnlm.errors import UserError, require_count
from rnnlm.scoring.dynamic import Adaptation, dynamic_evaluation
from rnnlm.scoring.ensemble import Ensemble
from rnnlm.scoring.mixture import GeometricWeights, PPMMixture
from rnnlm.scoring.ppm import ppm_read


def check_settings(cfg: DictConfig) -> None:
    """The settings beyond the static figure, refused before anything is scored."""
    settings = cfg.get("ppm_mixture") or {}
    if cfg.split == "windows" and (cfg.get("dynamic") or settings.get("order") is not None):
        raise UserError(
            "split=windows scores every window from a zero state, statically: dynamic=true and "
            "ppm_mixture.order read the text as streams, give split=all"
        )
    if settings.get("order") is not None:
        mixture_settings(settings)
    if cfg.get("dynamic"):
        Adaptation(**cfg.dynamic_eval)
        parts_read_first(cfg.get("dynamic_eval_read_first", "auto"), cfg.split)


def mixture_settings(settings) -> tuple[list[int], GeometricWeights]:
    """The PPM orders of `ppm_mixture` and the exponents of the product, every value checked."""
    order = settings.get("order")
    orders = list(order) if isinstance(order, Sequence) and not isinstance(order, str) else [order]
    if not orders:
        raise UserError("ppm_mixture.order=[] is not allowed: give an order, or a list of them")
    for value in orders:
        require_count("ppm_mixture.order", value, minimum=0)
    rate = settings.get("rate", 0.0) if settings.get("online") else 0.0
    return orders, GeometricWeights(len(orders) + 1, settings.get("weight"), rate)


def beyond_static(cfg: DictConfig, models, paths, dm, score, loss: float, own=None) -> float:
    """After the static `loss`: the mixed figure and the dynamic one (alone and mixed), printed;
    returns the last perplexity. `score(module)`: a module's mean loss through the task's loop;
    `own()`: the checkpoint's own text."""
    own = None if own is None else functools.cache(own)  # read once, if at all
    examples = dm.loader(cfg.split, whole=True).dataset
    mixture = ppm_mixture(cfg, dm, len(models[0].vocab), examples, own)
    adaptation = Adaptation(**cfg.dynamic_eval) if cfg.get("dynamic") else None
    read_first = parts_read_first(cfg.get("dynamic_eval_read_first", "auto"), cfg.split)
    if mixture is not None:
        loss = score(Ensemble(models, paths, mixture))
        report_mixture(mixture, loss)
    if adaptation is None:
        return math.exp(loss)
    own_text = own() if own is not None else None
    token = models[0].text_format.token_name
    loss, tokens, part = dynamic_evaluation(
        models, dm, cfg.split, adaptation, read_first, mixture, own_text
    )
    after = f", after learning from {' and '.join(read_first)}" if read_first else ""
    static = examples.num_targets if hasattr(examples, "starts") else 0
    other = (
        f" (the static figure's {static}: streams leave out their first {token}s and the "
        "remainder, so the figures are of slightly different characters)"
        if static and static != tokens
        else ""
    )
    print(
        f"dynamic evaluation (lr {adaptation.lr:g}, decay "
        f"{adaptation.decay:g}, segments of {adaptation.bptt}{after}; "
        f"{describe(part, token)}), {tokens} tokens scored{other}"
    )
    alone = mixture.model_loss() if mixture is not None else loss
    print(f"loss {alone:.4f}  ppl {math.exp(alone):.4f}  bpc {alone / math.log(2):.4f}")
    if mixture is not None:
        report_mixture(mixture, loss)
    return math.exp(loss)


def parts_read_first(value, split: str) -> list[str]:
    """The parts dynamic evaluation learns from before `split`: `auto` is val before test (never
    trained on, as the coders are given it), nothing before another part."""
    if value == "auto":
        return ["val"] if split == "test" else []
    names = list(value or [])
    # Learning from the scored text before scoring it would make it cheap (`all` holds them all).
    if any(
        name not in ("train", "val", "test") or split in (name, "all", "windows") for name in names
    ):
        raise UserError(
            f"dynamic_eval_read_first={names} is not allowed: give auto, or a list of parts "
            f"among train, val and test other than split={split} ([] for split=all)"
        )
    return names


def ppm_mixture(cfg: DictConfig, dm, vocab_size: int, examples, own=None):
    """The PPM of `cfg.ppm_mixture` over the text up to the end of the scored part (`prime`:
    after the own text's train part), or None without `ppm_mixture.order`."""
    settings = cfg.get("ppm_mixture") or {}
    order = settings.get("order")
    if order is None:
        return None
    orders, weights = mixture_settings(settings)
    if not hasattr(examples, "starts"):  # windows, not streams
        raise UserError(
            f"ppm_mixture.order={order} needs split={cfg.split} read as streams: give "
            "data.sampling=sequential (split=test and split=all are always read as streams)"
        )
    start, stop = (0, len(dm.corpus.chars)) if cfg.split == "all" else dm.parts()[cfg.split]
    ids = dm.lut[dm.corpus.chars[:stop].long()].tolist()
    first = []
    if settings.get("prime"):  # what the model learned from, read before the scored text
        text = own()
        first = text.lut[text.corpus.chars[: text.parts()["train"][1]].long()].tolist()
    tables = [ppm_read(first + ids, vocab_size, o, len(first) + start) for o in orders]
    return PPMMixture(tables, start, examples.starts, orders, weights)


def report_mixture(mixture: PPMMixture, loss: float) -> None:
    weights = mixture.weights
    said = f"the model's exponent {weights.start:g}"
    if weights.rate:
        exponents = ", ".join(f"{w:.3f}" for w in weights.w.tolist())
        said = f"{said}, exponents learned at rate {weights.rate:g}, at the end {exponents}"
    orders = "order" if len(mixture.order) == 1 else "orders"
    print(
        f"mixed with PPM {orders} {', '.join(map(str, mixture.order))} ({said}): "
        f"loss {loss:.4f}  ppl {math.exp(loss):.4f}  bpc {loss / math.log(2):.4f}"
    )


def describe(examples, token: str = "character") -> str:
    """Windows or streams (`rnnlm.text.streams`) in words."""
    if hasattr(examples, "starts"):
        streams = "1 stream" if examples.num_streams == 1 else f"{examples.num_streams} streams"
        return f"{streams} of {examples.length} {token}s, state carried"
    return f"{len(examples)} windows of {examples.num_steps} {token}s"

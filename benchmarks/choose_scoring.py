"""Scoring settings chosen on the validation part only (the test part is never read).

    python benchmarks/choose_scoring.py dynamic CKPT [--lr 3e-5,1e-4,3e-4] [--decay 0,1e-3,1e-2]
        [--bptt 10,20,50] [--method rms,sgd] [--streams N] [--json out.json]
    python benchmarks/choose_scoring.py mix CKPT [CKPT ...] [--lr 7e-5] [--decay 1e-3] [--bptt 40]
        [--json out.json]

`dynamic`: dynamic evaluation's grid, one row per setting (val bpc, static first) and the best.
`mix`: the models (one checkpoint or an ensemble) under dynamic evaluation, then mixed with PPM:
the project's mixture (the model and PPM 7, a weight per bucket of what PPM knows), a single
weight, more PPM orders as experts by online expectation-maximisation, buckets that also split
by which of the two did better lately; then products (`ppm_mixture.kind=geometric`): PPM 7 at a
fixed exponent, and several orders with the exponents learned token by token at a few rates
(`ppm_mixture.online=true`).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from rnnlm.checkpoints import load_lm, read_checkpoint
from rnnlm.scoring.dynamic import (
    Adaptation,
    dynamic_evaluation,
    dynamic_score,
    mean_squared_gradients,
)
from rnnlm.scoring.mixture import GeometricWeights, PPMMixture
from rnnlm.scoring.ppm import buckets, ppm_read
from rnnlm.text.data import TextData
from rnnlm.text.scored import data_settings

ORDER, START = 7, 0.79  # the mixture's settings chosen on validation (docs/whole_book.md)


def online_mix(experts: torch.Tensor, bucket: torch.Tensor, start, memory=4096, segment=40):
    """Mean log p of mixing `experts` (K, N) with one weight vector per bucket, learned online."""
    K, N = experts.shape
    probs = experts.exp()
    nb = int(bucket.max()) + 1
    counts = torch.full((nb,), 16.0, dtype=torch.float64)  # tokens' worth of the start
    sums = counts.unsqueeze(1) * torch.tensor(start, dtype=torch.float64)
    total, keep = 0.0, 1 - 1 / memory
    for a in range(0, N, segment):
        b, p = bucket[a : a + segment], probs[:, a : a + segment].T
        w = (sums[b] / counts[b].unsqueeze(1)).clamp(1e-4, 1)
        w = w / w.sum(1, keepdim=True)
        mixed = (w * p).sum(1)
        total += float(mixed.log().sum())
        seen = torch.bincount(b, minlength=nb).double()
        shares = torch.zeros(nb, K, dtype=torch.float64).index_add_(0, b, w * p / mixed[:, None])
        sums = sums * (keep**seen).unsqueeze(1) + shares
        counts = counts * keep**seen + seen
    return total / N


class Recorder(PPMMixture):
    """Keeps the models' log p of every token at every position of one stream."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.rows: list[torch.Tensor] = []

    def mix(self, distributions, position, Y):
        self.rows.append(distributions.detach().double().cpu()[0])
        return super().mix(distributions, position, Y)


def product(model, tables, targets, start, rate) -> float:
    """Mean log p of the product of the model's rows and the PPM `tables` (`GeometricWeights`)."""
    inputs = torch.stack([model, *tables], 1).unsqueeze(0)
    Y = torch.tensor(targets).unsqueeze(0)
    return float(GeometricWeights(len(tables) + 1, start, rate).mix(inputs, Y).mean())


PRODUCTS = {  # (orders, starting exponent of the model, rate)
    "PPM 7, exponent 0.7 (ppm_mixture.kind=geometric)": ((7,), 0.7, 0.0),
    "PPM 7, exponents online at 0.001": ((7,), 0.7, 1e-3),
    "PPM 7, 10, 5, 3, 1, fixed exponents 0.6 and 0.08 each": ((7, 10, 5, 3, 1), 0.6, 0.0),
    "PPM 7, 10, 5, 3, 1, exponents online at 0.0003": ((7, 10, 5, 3, 1), 0.6, 3e-4),
    "PPM 7, 10, 5, 3, 1, exponents online at 0.001": ((7, 10, 5, 3, 1), 0.6, 1e-3),
    "PPM 7, 10, 5, 3, 1, exponents online at 0.003": ((7, 10, 5, 3, 1), 0.6, 3e-3),
    "PPM 7, 5, 3, 1, exponents online at 0.001": ((7, 5, 3, 1), 0.6, 1e-3),
    "PPM 8, 6, 4, 2, exponents online at 0.001": ((8, 6, 4, 2), 0.6, 1e-3),
}


def recent(diff: torch.Tensor, rate: float = 0.1) -> torch.Tensor:
    """Before each token, the moving average of `diff` over the tokens before it."""
    out, value = torch.empty_like(diff), 0.0
    for t, d in enumerate(diff.tolist()):
        out[t], value = value, (1 - rate) * value + rate * d
    return out


def mix(args: argparse.Namespace) -> None:
    """The mixtures of the models and PPM, each a row of val bits per character."""
    checkpoint = read_checkpoint(args.ckpts[0])
    models = [load_lm(path) for path in args.ckpts]
    settings = data_settings(checkpoint, OmegaConf.create({}))
    dm = TextData(**settings, vocab=models[0].vocab.idx_to_token)
    dm.setup()
    start, stop = dm.parts()["val"]
    ids = dm.lut[dm.corpus.chars[:stop].long()].tolist()
    positions = torch.arange(start + 1, stop)  # what one stream scores: all but its first
    ppm, read = {}, {}
    for order in (3, 4, 5, 7, 8):
        read[order] = ppm_read(ids, len(models[0].vocab), order)
        ppm[order] = read[order][0][positions]
    known = read[ORDER][1][positions]
    adaptation = Adaptation(lr=args.lr, decay=args.decay, bptt=args.bptt, streams=1)
    recorder = Recorder(read[ORDER][0], START, None, [ORDER])  # keeps the models' log p
    dynamic_evaluation(models, dm, "val", adaptation, [], recorder)
    model = recorder.tokens()[0]
    assert len(model) == len(positions)
    rows = {"the models alone (dynamic)": float(model.mean())}
    two, pair = torch.stack([model, ppm[ORDER]]), [START, 1 - START]
    rows["PPM 7, a weight per bucket (ppm_mixture.online)"] = online_mix(two, known, pair)
    rows["PPM 7, one weight"] = online_mix(two, torch.zeros_like(known), pair)
    for orders in ((7, 5), (7, 4), (7, 3), (8, 5, 3)):
        experts = torch.stack([model] + [ppm[o] for o in orders])
        weights = [START] + [(1 - START) / len(orders)] * len(orders)
        rows[f"PPM {' + '.join(map(str, orders))}, experts"] = online_mix(experts, known, weights)
    lead = torch.bucketize(recent(ppm[ORDER] - model), torch.tensor([-1.0, 0.0, 1.0]).double())
    rows["PPM 7, buckets x which led lately"] = online_mix(two, known * 4 + lead, pair)
    assert int(known.max()) < buckets(ORDER)
    rows_of = torch.cat(recorder.rows)
    full = {}
    for name, (orders, first, rate) in PRODUCTS.items():
        for order in orders:
            if order not in full:
                full[order] = ppm_read(ids, len(models[0].vocab), order, start + 1)[2]
        tables = [full[o] for o in orders]
        rows[name] = product(rows_of, tables, ids[start + 1 : stop], first, rate)
    bpc = {name: -value / math.log(2) for name, value in rows.items()}
    for name, value in bpc.items():
        print(f"{value:.4f}  {name}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"split": "val", "ckpts": args.ckpts, "val_bpc": bpc}, f, indent=2)


def dynamic(args: argparse.Namespace) -> None:
    """Every combination of the given methods, step sizes, decays and segments, on val."""
    checkpoint = read_checkpoint(args.ckpts[0])
    model = load_lm(args.ckpts[0], checkpoint=checkpoint)
    given = OmegaConf.create({})
    dm = TextData(**data_settings(checkpoint, given), vocab=model.vocab.idx_to_token)
    dm.setup()
    rows, squares = [], {}
    static = Adaptation(method="sgd", lr=0.0, bptt=args.bptt[0])
    loss, _ = dynamic_score(model, dm.streams("val", static.bptt, args.streams), static, None)
    rows.append({"setting": "static", "val_bpc": loss / math.log(2)})
    print(f"static: val bpc {rows[0]['val_bpc']:.4f}", flush=True)
    for method, lr, decay, bptt in itertools.product(args.method, args.lr, args.decay, args.bptt):
        adaptation = Adaptation(method, lr, decay, bptt, streams=args.streams)
        if method == "rms" and bptt not in squares:
            train = dm.streams("train", bptt, dm.batch_size)
            squares[bptt] = mean_squared_gradients(model, train, adaptation.gradient_batches)
        start = time.perf_counter()
        val = dm.streams("val", bptt, args.streams)
        loss, _ = dynamic_score(model, val, adaptation, squares.get(bptt))
        row = {"method": method, "lr": lr, "decay": decay, "bptt": bptt}
        row |= {"val_bpc": loss / math.log(2), "seconds": round(time.perf_counter() - start, 2)}
        rows.append(row)
        print(f"{method} lr {lr:g} decay {decay:g} bptt {bptt}: val bpc {row['val_bpc']:.4f}")
    best = min(rows[1:], key=lambda r: r["val_bpc"])
    print(f"best on val: {best}")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "best": best}, indent=2) + "\n")


def floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("dynamic")
    p.add_argument("ckpts", nargs=1)
    p.add_argument("--lr", type=floats, default=floats("3e-5,1e-4,3e-4,1e-3"))
    p.add_argument("--decay", type=floats, default=floats("0,1e-3,1e-2"))
    p.add_argument("--bptt", type=lambda t: [int(v) for v in t.split(",")], default=[20])
    p.add_argument("--method", type=lambda t: t.split(","), default=["rms"])
    p.add_argument("--streams", type=int, default=1, help="streams the part is read as")
    p.add_argument("--json")
    p = sub.add_parser("mix")
    p.add_argument("ckpts", nargs="+")
    p.add_argument("--lr", type=float, default=7e-5)
    p.add_argument("--decay", type=float, default=1e-3)
    p.add_argument("--bptt", type=int, default=40)
    p.add_argument("--json")
    args = parser.parse_args()
    (dynamic if args.what == "dynamic" else mix)(args)


if __name__ == "__main__":
    main()

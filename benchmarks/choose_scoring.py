"""Scoring settings chosen on the validation part only (the test part is never read).

    python benchmarks/choose_scoring.py dynamic CKPT [--lr 3e-5,1e-4,3e-4] [--decay 0,1e-3,1e-2]
        [--bptt 10,20,50] [--streams N] [--json out.json]
    python benchmarks/choose_scoring.py mix CKPT [CKPT ...] [--lr 7e-5] [--decay 1e-3] [--bptt 40]
        [--json out.json]

`dynamic`: dynamic evaluation's grid, one row per setting (val bpc, static first) and the best.
`mix`: the models (one checkpoint or an ensemble) under dynamic evaluation, then their product
with PPM models (`ppm_mixture`): PPM 7 at a fixed exponent, and several orders with fixed
exponents or exponents learned token by token at a few rates (`ppm_mixture.online=true`).
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
from rnnlm.scoring.mixture import GeometricWeights, at
from rnnlm.scoring.ppm import ppm_read
from rnnlm.text.data import TextData
from rnnlm.text.scored import data_settings


class Recorder:
    """Stands in for a mixture in dynamic evaluation: keeps the models' log p of every token at
    every position of one stream, and scores the models alone."""

    def __init__(self) -> None:
        self.rows: list[torch.Tensor] = []

    def use(self, starts: torch.Tensor) -> None:
        self.rows = []

    def mix(self, distributions: torch.Tensor, position: int, Y: torch.Tensor) -> torch.Tensor:
        self.rows.append(distributions.detach().double().cpu()[0])
        return at(distributions, Y)


def product(model, tables, targets, start, rate) -> float:
    """Mean log p of the product of the model's rows and the PPM `tables` (`GeometricWeights`)."""
    inputs = torch.stack([model, *tables], 1).unsqueeze(0)
    Y = torch.tensor(targets).unsqueeze(0)
    return float(GeometricWeights(len(tables) + 1, start, rate).mix(inputs, Y).mean())


PRODUCTS = {  # (orders, starting exponent of the model, rate)
    "PPM 7, exponent 0.7": ((7,), 0.7, 0.0),
    "PPM 7, exponents online at 0.001": ((7,), 0.7, 1e-3),
    "PPM 7, 10, 5, 3, 1, fixed exponents 0.6 and 0.08 each": ((7, 10, 5, 3, 1), 0.6, 0.0),
    "PPM 7, 10, 5, 3, 1, exponents online at 0.0003": ((7, 10, 5, 3, 1), 0.6, 3e-4),
    "PPM 7, 10, 5, 3, 1, exponents online at 0.001": ((7, 10, 5, 3, 1), 0.6, 1e-3),
    "PPM 7, 10, 5, 3, 1, exponents online at 0.003": ((7, 10, 5, 3, 1), 0.6, 3e-3),
    "PPM 7, 5, 3, 1, exponents online at 0.001": ((7, 5, 3, 1), 0.6, 1e-3),
    "PPM 8, 6, 4, 2, exponents online at 0.001": ((8, 6, 4, 2), 0.6, 1e-3),
}


def mix(args: argparse.Namespace) -> None:
    """The mixtures of the models and PPM, each a row of val bits per character."""
    checkpoint = read_checkpoint(args.ckpts[0])
    models = [load_lm(path) for path in args.ckpts]
    settings = data_settings(checkpoint, OmegaConf.create({}))
    dm = TextData(**settings, vocab=models[0].vocab.idx_to_token)
    dm.setup()
    start, stop = dm.parts()["val"]
    ids = dm.lut[dm.corpus.chars[:stop].long()].tolist()
    adaptation = Adaptation(lr=args.lr, decay=args.decay, bptt=args.bptt, streams=1)
    recorder = Recorder()
    dynamic_evaluation(models, dm, "val", adaptation, [], recorder)
    rows_of = torch.cat(recorder.rows)  # the models' log p of every token, one stream
    targets = ids[start + 1 : stop]
    model = rows_of.gather(1, torch.tensor(targets).unsqueeze(1)).squeeze(1)
    rows = {"the models alone (dynamic)": float(model.mean())}
    tables = {}
    for name, (orders, first, rate) in PRODUCTS.items():
        for order in orders:
            if order not in tables:
                tables[order] = ppm_read(ids, len(models[0].vocab), order, start + 1)
        rows[name] = product(rows_of, [tables[o] for o in orders], targets, first, rate)
    bpc = {name: -value / math.log(2) for name, value in rows.items()}
    for name, value in bpc.items():
        print(f"{value:.4f}  {name}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"split": "val", "ckpts": args.ckpts, "val_bpc": bpc}, f, indent=2)


def dynamic(args: argparse.Namespace) -> None:
    """Every combination of the given step sizes, decays and segments, on val."""
    checkpoint = read_checkpoint(args.ckpts[0])
    model = load_lm(args.ckpts[0], checkpoint=checkpoint)
    given = OmegaConf.create({})
    dm = TextData(**data_settings(checkpoint, given), vocab=model.vocab.idx_to_token)
    dm.setup()
    rows, squares = [], {}
    for bptt in args.bptt:  # what scales every step: the train part's mean squared gradients
        train = dm.streams("train", bptt, dm.batch_size)
        squares[bptt] = mean_squared_gradients(model, train, Adaptation().gradient_batches)
    static = Adaptation(lr=0.0, bptt=args.bptt[0], streams=args.streams)
    val = dm.streams("val", static.bptt, args.streams)
    loss, _ = dynamic_score(model, val, static, squares[static.bptt])
    rows.append({"setting": "static", "val_bpc": loss / math.log(2)})
    print(f"static: val bpc {rows[0]['val_bpc']:.4f}", flush=True)
    for lr, decay, bptt in itertools.product(args.lr, args.decay, args.bptt):
        adaptation = Adaptation(lr, decay, bptt, streams=args.streams)
        start = time.perf_counter()
        val = dm.streams("val", bptt, args.streams)
        loss, _ = dynamic_score(model, val, adaptation, squares[bptt])
        row = {"lr": lr, "decay": decay, "bptt": bptt}
        row |= {"val_bpc": loss / math.log(2), "seconds": round(time.perf_counter() - start, 2)}
        rows.append(row)
        print(f"lr {lr:g} decay {decay:g} bptt {bptt}: val bpc {row['val_bpc']:.4f}")
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

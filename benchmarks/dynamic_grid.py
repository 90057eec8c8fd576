"""Choose dynamic evaluation's settings on the validation part only: every combination of the
given methods, step sizes, decays and segment lengths, scored on `val` of a checkpoint's text.

    python benchmarks/dynamic_grid.py CKPT [--lr 3e-5,1e-4,3e-4] [--decay 0,1e-3,1e-2]
        [--bptt 10,20,50] [--method rms,sgd] [--streams N] [--json out.json]

Prints one row per setting (val bpc, static first) and the best; the test part is never read.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import time
from pathlib import Path

from rnnlm.checkpoints import load_lm, read_checkpoint
from rnnlm.scoring.dynamic import Adaptation, dynamic_score, mean_squared_gradients
from rnnlm.text.data import TextData
from rnnlm.text.scored import data_settings


def floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ckpt")
    parser.add_argument("--lr", type=floats, default=floats("3e-5,1e-4,3e-4,1e-3"))
    parser.add_argument("--decay", type=floats, default=floats("0,1e-3,1e-2"))
    parser.add_argument("--bptt", type=lambda t: [int(v) for v in t.split(",")], default=[20])
    parser.add_argument("--method", type=lambda t: t.split(","), default=["rms"])
    parser.add_argument("--streams", type=int, default=1, help="streams the part is read as")
    parser.add_argument("--json")
    args = parser.parse_args()
    checkpoint = read_checkpoint(args.ckpt)
    model = load_lm(args.ckpt, checkpoint=checkpoint)
    from omegaconf import OmegaConf

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


if __name__ == "__main__":
    main()

"""Other ways of mixing a model with PPM, tried on the validation part only: the models
(one checkpoint or an ensemble) under dynamic evaluation, then each token's probability mixed
with PPM models of several orders by online expectation-maximisation, the weights fixed within
each segment and learned after it, as `ppm_mixture.online=true` does for one order.

    python benchmarks/mix_experts.py CKPT [CKPT ...] [--lr 7e-5] [--decay 1e-3] [--bptt 40]
        [--json out.json]

Rows: the project's mixture (the model and PPM 7, a weight per bucket of what PPM knows), a
single weight, more PPM orders as experts, and buckets that also split by which of the two
did better over the last tokens; then products (`ppm_mixture.kind=geometric`): PPM 7 at a fixed
exponent, and several orders with the exponents learned token by token at a few rates
(`ppm_mixture.online=true`). The test part is never read.
"""

from __future__ import annotations

import argparse
import json
import math

import torch
from omegaconf import OmegaConf

from rnnlm.checkpoints import load_lm, read_checkpoint
from rnnlm.scoring.dynamic import Adaptation, dynamic_evaluation
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ckpts", nargs="+")
    parser.add_argument("--lr", type=float, default=7e-5)
    parser.add_argument("--decay", type=float, default=1e-3)
    parser.add_argument("--bptt", type=int, default=40)
    parser.add_argument("--json")
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()

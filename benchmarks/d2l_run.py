"""The book's own run with the real d2l 1.0.3 package (optional; needs `pip install d2l==1.0.3`).

    python benchmarks/d2l_run.py --data data/timemachine.txt [--model concise]
        [--seed N]

At the end it prints the validation perplexity two ways: token-weighted (exp of the mean
cross-entropy over all validation tokens, rnnlm's val/ppl) and as d2l's chart averages it
(the mean of per-batch perplexities). d2l sets no seed; `--seed` calls torch.manual_seed first.

d2l reads `../data/timemachine.txt` (SHA-1 checked): `--data` is copied to a temp dir. The live
matplotlib chart is switched off (`--plot` keeps it): it is not part of training.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

from book_loop import BookRNNScratch  # the chapter's RNNScratch (d2l's copy lacks sigma)
from book_path import add_data_argument


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_argument(parser)
    parser.add_argument("--model", choices=["scratch", "concise"], default="scratch")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--plot", action="store_true")
    parser.add_argument("--seed", type=int, help="torch.manual_seed before data and model")
    args = parser.parse_args()
    start = time.perf_counter()
    import matplotlib

    matplotlib.use("Agg")
    from d2l import torch as d2l

    if not args.plot:
        d2l.ProgressBoard.draw = lambda self, *a, **k: None

    # d2l reads ../data/timemachine.txt relative to the working directory.
    work = Path(tempfile.mkdtemp())
    (work / "data").mkdir()
    (work / "run").mkdir()
    shutil.copy(args.data, work / "data" / "timemachine.txt")
    os.chdir(work / "run")
    import torch

    if args.seed is not None:
        torch.manual_seed(args.seed)
    data = d2l.TextData(batch_size=1024, num_steps=32)
    if args.model == "scratch":
        model = d2l.RNNLMScratch(BookRNNScratch(len(data.vocab), 32), len(data.vocab), lr=1)
    else:
        model = d2l.RNNLM(d2l.RNN(len(data.vocab), 32), len(data.vocab), lr=1)
    trainer = d2l.Trainer(max_epochs=args.epochs, gradient_clip_val=1, num_gpus=0)
    trainer.fit(model, data)
    text = model.predict("it has", 20, data.vocab)
    seconds = time.perf_counter() - start
    token_weighted, chart = validation_ppl(model, data)
    print(
        f"d2l {args.model} seed {args.seed}: val ppl {token_weighted:.3f} token-weighted, "
        f"{chart:.3f} mean of batches; {text!r}, import + data + fit {seconds:.2f} s"
    )


def validation_ppl(model, data) -> tuple[float, float]:
    """(exp of the token-weighted mean cross-entropy, mean over batches of exp(batch mean))."""
    import torch  # already loaded by d2l (main imports it late to time it)

    total, count, per_batch = 0.0, 0, []
    model.eval()
    with torch.no_grad():
        for X, Y in data.get_dataloader(train=False):
            logits = model(X)
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), Y.reshape(-1), reduction="sum"
            )
            total, count = total + float(loss), count + Y.numel()
            per_batch.append(math.exp(float(loss) / Y.numel()))
    return math.exp(total / count), sum(per_batch) / len(per_batch)


if __name__ == "__main__":
    main()

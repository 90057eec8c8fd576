"""The book's own run with the real d2l 1.0.3 package (optional; needs `pip install d2l==1.0.3`).

    python benchmarks/d2l_run.py --data ../shared/data/timemachine.txt [--model concise]

d2l reads `../data/timemachine.txt` (SHA-1 checked): `--data` is copied to a temp dir. The live
matplotlib chart is switched off (`--plot` keeps it): it is not part of training.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from book_loop import BookRNNScratch  # the chapter's RNNScratch (d2l's copy lacks sigma)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", choices=["scratch", "concise"], default="scratch")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--plot", action="store_true")
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
    data = d2l.TimeMachine(batch_size=1024, num_steps=32)
    if args.model == "scratch":
        model = d2l.RNNLMScratch(BookRNNScratch(len(data.vocab), 32), len(data.vocab), lr=1)
    else:
        model = d2l.RNNLM(d2l.RNN(len(data.vocab), 32), len(data.vocab), lr=1)
    trainer = d2l.Trainer(max_epochs=args.epochs, gradient_clip_val=1, num_gpus=0)
    trainer.fit(model, data)
    text = model.predict("it has", 20, data.vocab)
    print(f"d2l {args.model}: {text!r}, import + data + fit {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()

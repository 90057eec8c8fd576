"""Training throughput, side by side in one run: the book's loop, rnnlm's scratch LM, rnnlm's
concise (`torch.nn.RNN`) LM, at the book's setting and at larger ones.

    python benchmarks/bench_train.py --data data/timemachine.txt
        [--settings book,h256,h256s128,h1024] [--epochs 3] [--device cpu|cuda] [--compile]
        [--plain-loop] [--json out.json]

Each model trains `--warmup` epochs, then `--epochs` timed epochs of its training windows
(validation off); the table shows the median seconds per epoch, tokens per second, and the
ratios. rnnlm's models train through the real `pytorch_lightning.Trainer` (clipping, logging
of epoch metrics); the book's loop is `benchmarks/book_loop.py` (materialised windows, a
DataLoader collating samples, one-hot matmul per step, hand-written clipping with a host sync).
`--plain-loop` adds the scratch LM trained by a bare python loop over the same batches
(loss, backward, clip_grad_norm_, SGD step): what the Trainer itself costs.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import pytorch_lightning as pl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from book_loop import BookRNNLMScratch, BookRNNScratch, book_data, train_epoch

from rnnlm.fast.core import FastRNNScratch
from rnnlm.fast.lm import FastRNNLM, FastRNNLMScratch
from rnnlm.ops.trainer import bare_trainer, quiet_known_noise
from rnnlm.rnn import RNN, core
from rnnlm.text.data import TextData

BOOK = os.environ.get("RNNLM_TIMEMACHINE", "data/timemachine.txt")  # docs/development.md

# name: (num_hiddens, num_steps, training batches per timed epoch; None = all 10)
SETTINGS = {
    "book": (32, 32, None),
    "h256": (256, 32, None),
    "h256s128": (256, 128, None),
    "h1024": (1024, 32, 3),
    "tiny": (8, 8, 2),  # gpu_check.sh --dry-run: proves the script runs, measures nothing
}
BATCH, NUM_TRAIN = 1024, 10000


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_book_loop(args, hiddens: int, steps: int, limit: int | None) -> list[float]:
    vocab, loader = book_data(args.data, BATCH, steps)
    limited = (lambda train: itertools.islice(loader(train), limit)) if limit else loader
    model = BookRNNLMScratch(BookRNNScratch(len(vocab), hiddens), len(vocab)).to(args.device)
    optim = torch.optim.SGD(model.parameters(), lr=1)
    times = []
    for _ in range(args.warmup + args.epochs):
        sync(args.device)
        start = time.perf_counter()
        train_epoch(model, limited, optim, device=args.device)
        sync(args.device)
        times.append(time.perf_counter() - start)
    return times[args.warmup :]


class EpochTimer(pl.Callback):
    def __init__(self, device: str) -> None:
        self.device, self.times, self.start = device, [], 0.0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        sync(self.device)
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        sync(self.device)
        self.times.append(time.perf_counter() - self.start)


def time_rnnlm(
    args, concise: bool, hiddens: int, steps: int, limit: int | None, compile: bool = False
) -> list[float]:
    dm = TextData(batch_size=BATCH, num_steps=steps, path=args.data)
    dm.setup()
    vocab = dm.vocab.idx_to_token
    if concise:
        model = FastRNNLM(core(RNN, num_hiddens=hiddens), vocab, lr=1)
    else:
        model = FastRNNLMScratch(
            core(FastRNNScratch, num_hiddens=hiddens), vocab, lr=1, compile=compile
        )
    timer = EpochTimer(args.device)
    trainer = bare_trainer(
        accelerator="gpu" if args.device == "cuda" else "cpu",
        devices=1,
        max_epochs=args.warmup + args.epochs,
        gradient_clip_val=1,
        limit_train_batches=limit or 1.0,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=[timer],
    )
    trainer.fit(model, dm)
    return timer.times[args.warmup :]


def time_plain_loop(args, hiddens: int, steps: int, limit: int | None) -> list[float]:
    """The scratch LM and its batches as `time_rnnlm` has them, without the Trainer."""
    dm = TextData(batch_size=BATCH, num_steps=steps, path=args.data)
    dm.setup()
    vocab = dm.vocab.idx_to_token
    model = FastRNNLMScratch(core(FastRNNScratch, num_hiddens=hiddens), vocab, lr=1)
    model = model.to(args.device).train()
    optim = torch.optim.SGD(model.parameters(), lr=1)
    times = []
    for _ in range(args.warmup + args.epochs):
        sync(args.device)
        start = time.perf_counter()
        for X, Y in itertools.islice(dm.train_dataloader(), limit):
            loss = model.batch_loss(X.to(args.device), Y.to(args.device))[0]
            optim.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1)
            optim.step()
        sync(args.device)
        times.append(time.perf_counter() - start)
    return times[args.warmup :]


def measure(args, name: str) -> dict:
    hiddens, steps, limit = SETTINGS[name]
    tokens = (limit * BATCH if limit else NUM_TRAIN) * steps
    runs = {
        "book loop": lambda: time_book_loop(args, hiddens, steps, limit),
        "scratch": lambda: time_rnnlm(args, False, hiddens, steps, limit),
        "concise": lambda: time_rnnlm(args, True, hiddens, steps, limit),
    }
    if args.compile:  # compiling happens in the warm-up epoch, outside the timed ones
        runs["scratch compiled"] = lambda: time_rnnlm(args, False, hiddens, steps, limit, True)
    if args.plain_loop:
        runs["scratch plain loop"] = lambda: time_plain_loop(args, hiddens, steps, limit)
    row = {"setting": name, "num_hiddens": hiddens, "num_steps": steps, "tokens": tokens}
    for model, run in runs.items():
        seconds = statistics.median(run())
        row[model] = {"s_per_epoch": seconds, "tokens_per_s": tokens / seconds}
        print(f"  {name:9s} {model:16s} {seconds:8.4f} s/epoch {tokens / seconds:12,.0f} tokens/s")
    rate = {model: row[model]["tokens_per_s"] for model in runs}
    row["scratch/book loop"] = rate["scratch"] / rate["book loop"]
    row["scratch/concise"] = rate["scratch"] / rate["concise"]
    if args.compile:
        row["compiled/scratch"] = rate["scratch compiled"] / rate["scratch"]
    if args.plain_loop:
        row["plain loop/scratch"] = rate["scratch plain loop"] / rate["scratch"]
    return row


def machine(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return f"{cpu}, threads: {torch.get_num_threads()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        default=BOOK,
        help="the book (default: $RNNLM_TIMEMACHINE, else data/timemachine.txt)",
    )
    parser.add_argument("--settings", default="book,h256,h256s128,h1024")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per model")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--compile", action="store_true", help="add scratch with model.compile")
    parser.add_argument(
        "--plain-loop", action="store_true", help="add scratch in a bare loop, no Trainer"
    )
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    quiet_known_noise()  # no tips, no device lines: one Trainer per measurement
    rows = [measure(args, name) for name in args.settings.split(",")]
    print(f"\n{machine(args.device)}, torch {torch.__version__}; median of {args.epochs} epochs")
    print(
        "setting    hidden steps  book loop tok/s  scratch tok/s  concise tok/s  "
        "scratch/book  scratch/concise"
    )
    for r in rows:
        print(
            f"{r['setting']:10s} {r['num_hiddens']:6d} {r['num_steps']:5d} "
            f"{r['book loop']['tokens_per_s']:15,.0f} {r['scratch']['tokens_per_s']:14,.0f} "
            f"{r['concise']['tokens_per_s']:14,.0f} {r['scratch/book loop']:12.2f}x "
            f"{r['scratch/concise']:15.2f}x"
            + (f"  compiled/scratch {r['compiled/scratch']:.2f}x" if args.compile else "")
            + (f"  plain loop/scratch {r['plain loop/scratch']:.2f}x" if args.plain_loop else "")
        )
    if args.json:
        result = {"machine": machine(args.device), "torch": torch.__version__, "rows": rows}
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

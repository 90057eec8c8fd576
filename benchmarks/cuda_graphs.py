"""CUDA graphs for the scratch LM's training step: eager against `torch.compile` with
`mode="reduce-overhead"` (which records the step's kernels once and replays them), side by side.

    python benchmarks/cuda_graphs.py --data data/timemachine.txt [--device cuda]
        [--steps 50] [--hiddens 32] [--num-steps 32] [--batch 1024] [--json out.json]

CUDA graphs need fixed shapes: every batch here is a full `--batch` x `--num-steps` (the
ragged last batch of an epoch is dropped). The book's step is ~30 small kernels per time
step, each launched from Python: on a GPU the launches, not the maths, bound the step, which
is what a replayed graph removes. On a CPU the same compile runs without graphs (a dry run
of the measurement). A failure to compile is reported as the reason, not raised.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from book_path import add_data_argument

from rnnlm.fast.core import FastRNNScratch
from rnnlm.fast.lm import FastRNNLMScratch
from rnnlm.rnn import core
from rnnlm.text.data import TextData


def full_batches(data: str, batch: int, num_steps: int, count: int) -> tuple[list, list[str]]:
    """`count` full batches (repeated if the data has fewer), and the vocabulary."""
    dm = TextData(batch_size=batch, num_steps=num_steps, path=data)
    dm.setup()
    batches = [b for b in dm.train_dataloader() if len(b[0]) == batch]  # fixed shapes only
    return (batches * (count // max(1, len(batches)) + 1))[:count], dm.vocab.idx_to_token


def time_steps(step, batches: list, device: str) -> list[float]:
    times = []
    for X, Y in batches:
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        step(X.to(device, non_blocking=True), Y.to(device, non_blocking=True))
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def make_step(model: FastRNNLMScratch, compiled: bool):
    optim = torch.optim.SGD(model.parameters(), lr=1)
    for param in model.parameters():
        # Own gradient buffers from the start: backward into a `None` gradient would keep the
        # graph's output tensor as `.grad`, which the next replay overwrites.
        param.grad = torch.zeros_like(param)

    # Only the loss is compiled; backward runs outside, as in training. reduce-overhead
    # records the forward and (through AOTAutograd) the backward as CUDA graphs.
    def loss_of(X, Y):
        return model.batch_loss(X, Y)[0]

    if compiled:
        loss_of = torch.compile(loss_of, mode="reduce-overhead", dynamic=False)

    def step(X, Y):
        if compiled:
            # a new iteration: the graphs may overwrite the last step's outputs (its loss)
            torch.compiler.cudagraph_mark_step_begin()
        optim.zero_grad(set_to_none=False)  # graphs replay into the same gradient buffers
        loss_of(X, Y).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1)
        optim.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_argument(parser)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda")
    parser.add_argument("--steps", type=int, default=50, help="timed steps (after 3 warm-up)")
    parser.add_argument("--hiddens", type=int, default=32)
    parser.add_argument("--num-steps", type=int, default=32)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--json")
    args = parser.parse_args()
    warmup = 3
    batches, vocab = full_batches(args.data, args.batch, args.num_steps, warmup + args.steps)
    result = {
        "device": args.device,
        "batch": args.batch,
        "num_steps": args.num_steps,
        "num_hiddens": args.hiddens,
    }
    for name, compiled in (("eager", False), ("reduce-overhead", True)):
        torch.manual_seed(0)
        model = FastRNNLMScratch(core(FastRNNScratch, num_hiddens=args.hiddens), vocab, lr=1).to(
            args.device
        )
        try:
            step = make_step(model, compiled)
            start = time.perf_counter()
            time_steps(step, batches[:warmup], args.device)  # compiles / records the graphs
            result[f"{name} warm-up s"] = time.perf_counter() - start
            result[f"{name} ms/step"] = 1000 * statistics.median(
                time_steps(step, batches[warmup:], args.device)
            )
        except Exception as err:  # the reason it fails is the measurement
            result[f"{name} error"] = f"{type(err).__name__}: {str(err).splitlines()[0][:300]}"
    if "reduce-overhead ms/step" in result and "eager ms/step" in result:
        result["speed-up"] = result["eager ms/step"] / result["reduce-overhead ms/step"]
    for key, value in result.items():
        print(f"{key:28s} {value:.4f}" if isinstance(value, float) else f"{key:28s} {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

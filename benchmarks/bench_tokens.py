"""What each way of reading a text costs, side by side in one run: vocabulary size, tokens,
bytes per stored token, the model's parameters, and training speed in tokens and in characters
of the text per second, for `data.preprocess` x `data.token`.

    python benchmarks/bench_tokens.py [--data FILE] [--batches 20] [--json out.json]

Every format trains the same model (experiment=raw_book's: a 2-layer LSTM of 384 units on a
64-dimensional embedding, 32 streams of 128 tokens, 32 for words (about as many characters),
Adam) for `--batches` timed batches after 3 untimed ones, through a bare loop (loss, backward,
clipping, step): the cost of the format, not of the Trainer. Characters per token are the
text's, over the train part.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from book_path import add_data_argument

from rnnlm.cores import LSTM
from rnnlm.fast.lm import FastRNNLM
from rnnlm.rnn import core
from rnnlm.text.data import TextData

FORMATS = [("book", "char"), ("none", "char"), ("none", "byte"), ("none", "word")]


def measure(path: str, preprocess: str, token: str, batches: int, warmup: int = 3) -> dict:
    dm = TextData(
        path=path, split="contiguous", sampling="sequential", batch_size=32,
        num_steps=32 if token == "word" else 128,
        preprocess=preprocess, token=token,
    )  # fmt: skip
    dm.setup()
    torch.manual_seed(0)
    rnn = core(LSTM, num_hiddens=384, num_layers=2, dropout=0.25, weight_drop=0.25)
    model = FastRNNLM(rnn, dropout=0.25, embedding=64, lr=0.003, **dm.model_inputs())
    optim = torch.optim.Adam(model.parameters(), lr=0.003)
    train = dm.examples("train", training=True)
    timed = []
    state = None
    for k in range(min(len(train), warmup + batches)):
        X, Y, _ = train[k]
        start = time.perf_counter()
        loss, state = model.batch_loss(X, Y, state)
        state = tuple(s.detach() for s in state)
        optim.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.step()
        if k >= warmup:
            timed.append(time.perf_counter() - start)
    seconds = sum(timed)
    tokens = len(timed) * X.numel()
    ratio = dm.characters_per_token("train") if token != "char" else None
    per_token = 1 / ratio if ratio else 1.0  # characters of the text per token
    return {
        "format": f"preprocess={preprocess} token={token}",
        "vocabulary": len(dm.vocab),
        "tokens": len(dm.corpus.chars),
        "bytes_per_stored_token": dm.corpus.chars.element_size(),
        "characters_per_token": round(per_token, 3),
        "parameters": sum(p.numel() for p in model.parameters()),
        "tokens_per_s": round(tokens / seconds),
        "characters_per_s": round(tokens * per_token / seconds),
        "unknown": dm.unknown(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_argument(parser)
    parser.add_argument("--batches", type=int, default=20, help="timed batches per format")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    rows = [measure(args.data, p, t, args.batches) for p, t in FORMATS]
    print(
        "| format | vocabulary | tokens | bytes / token stored | characters / token | "
        "parameters | tokens / s | characters / s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['format']} | {r['vocabulary']} | {r['tokens']} | "
            f"{r['bytes_per_stored_token']} | {r['characters_per_token']} | {r['parameters']} | "
            f"{r['tokens_per_s']} | {r['characters_per_s']} |"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory of the process: {peak:.0f} MB; {torch.get_num_threads()} threads")
    if args.json:
        meta = {
            "machine": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
        }
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""The data path on corpora far larger than the book: time and memory to clean, encode, index
and iterate one epoch, against the book's approach (python lists, every window materialised).

    python benchmarks/bench_data.py --data data/timemachine.txt
        [--sizes-mb 100,1000] [--train-batches 200] [--book-limit-gb 8] [--json out.json]

The large corpora are the book repeated to the size asked (written to a temp folder). Each
measurement runs in a fresh process, so its peak memory (VmHWM) is its own. Memory is
reported as peak RSS and as anonymous memory (RssAnon, sampled during the epoch): pages of
the memory-mapped corpus count in RSS but are the kernel's page cache, which it can drop.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MB = 2**20


def status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def make_corpus(book: Path, folder: Path, size_mb: int) -> Path:
    path = folder / f"book_x_{size_mb}mb.txt"
    if not path.exists():
        text = book.read_bytes()
        with open(path, "wb") as f:
            for _ in range(size_mb * MB // len(text)):
                f.write(text)
    return path


def child_rnnlm(path: Path, train_batches: int) -> dict:
    """Clean + encode (writing the memory-mapped cache), reload from the cache, iterate one
    epoch of training batches, then train `train_batches` steps of the scratch LM."""
    from rnnlm.text.cache import load_corpus
    from rnnlm.text.data import TextData

    size = path.stat().st_size
    start = time.perf_counter()
    corpus = load_corpus(path, (path.parent,), min_cache_bytes=0)
    encode_s = time.perf_counter() - start
    peak_encode_mb = status_kb("VmHWM") / 1024
    del corpus
    dm = TextData(path=str(path), num_train=0.9, num_val=0.1, memmap_min_mb=0)
    start = time.perf_counter()
    dm.setup()
    cached_s = time.perf_counter() - start
    loader = dm.train_dataloader()
    anon, batches, tokens = [], len(loader), 0
    start = time.perf_counter()
    for i, (X, _) in enumerate(loader):
        tokens += X.numel()
        if i % max(1, batches // 20) == 0:
            anon.append(status_kb("RssAnon") / 1024)
    epoch_s = time.perf_counter() - start
    result = {
        "bytes": size,
        "encode_s": encode_s,
        "encode_mb_per_s": size / MB / encode_s,
        "peak_rss_encode_mb": peak_encode_mb,
        "load_cached_s": cached_s,
        "epoch_batches": batches,
        "epoch_tokens": tokens,
        "epoch_s": epoch_s,
        "epoch_anon_mb_first_last_max": [anon[0], anon[-1], max(anon)],
        "peak_rss_mb": status_kb("VmHWM") / 1024,
    }
    if train_batches:
        result["train"] = train_some(dm, train_batches)
    return result


def train_some(dm, batches: int) -> dict:
    """`batches` real training steps (Trainer, clipping) on the big corpus, memory sampled."""
    import pytorch_lightning as pl

    from rnnlm.fast.core import FastRNNScratch
    from rnnlm.fast.lm import FastRNNLMScratch
    from rnnlm.ops.trainer import bare_trainer
    from rnnlm.rnn import core

    model = FastRNNLMScratch(core(FastRNNScratch, num_hiddens=32), dm.vocab.idx_to_token, lr=1)
    anon = []

    class Sample(pl.Callback):
        def on_train_batch_end(self, trainer, *args) -> None:
            if trainer.global_step % max(1, batches // 20) == 0:
                anon.append(status_kb("RssAnon") / 1024)

    trainer = bare_trainer(
        accelerator="cpu",
        max_steps=batches,
        limit_val_batches=0,
        gradient_clip_val=1,
        callbacks=[Sample()],
    )
    start = time.perf_counter()
    trainer.fit(model, dm)
    seconds = time.perf_counter() - start
    return {
        "steps": batches,
        "s": seconds,
        "anon_mb_first_last_max": [anon[0], anon[-1], max(anon)],
        "train_loss": float(trainer.callback_metrics["train/loss"]),
    }


def child_book(path: Path, limit_gb: float, num_steps: int = 32) -> dict:
    """The book's approach, stage by stage, under an address-space limit: where it stops."""
    limit = int(limit_gb * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    stages, start = {}, time.perf_counter()
    try:
        import torch

        text = re.sub("[^A-Za-z]+", " ", path.read_text()).lower()
        stages["read + preprocess"] = time.perf_counter() - start
        tokens = list(text)
        stages["tokens as a python list"] = time.perf_counter() - start
        idx = {t: i for i, t in enumerate(sorted({"<unk>", *set(tokens)}))}
        corpus = [idx[t] for t in tokens]
        stages["corpus as a python list"] = time.perf_counter() - start
        del tokens, text
        windows = torch.tensor(
            [corpus[i : i + num_steps + 1] for i in range(len(corpus) - num_steps)]
        )
        stages["all windows materialised"] = time.perf_counter() - start
        return {
            "finished": True,
            "stages_s": stages,
            "windows": len(windows),
            "peak_rss_mb": status_kb("VmHWM") / 1024,
        }
    except MemoryError:
        return {
            "finished": False,
            "stopped_after": list(stages)[-1] if stages else "start",
            "stages_s": stages,
            "seconds": time.perf_counter() - start,
            "peak_rss_mb": status_kb("VmHWM") / 1024,
            "limit_gb": limit_gb,
        }


def in_child(*args: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True
    )
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr else out.returncode}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="path of timemachine.txt (repeated to each size)")
    parser.add_argument("--sizes-mb", default="100,1000")
    parser.add_argument(
        "--train-batches",
        type=int,
        default=200,
        help="training steps on the smallest large corpus (0: none)",
    )
    parser.add_argument(
        "--book-limit-gb",
        type=float,
        default=8.0,
        help="address-space limit for the book's approach",
    )
    parser.add_argument("--dir", help="where to write the corpora (default: a temp folder)")
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, path, extra = args.child[0], Path(args.child[1]), float(args.child[2])
        result = child_rnnlm(path, int(extra)) if kind == "rnnlm" else child_book(path, extra)
        print(json.dumps(result))
        return
    sizes = [int(s) for s in args.sizes_mb.split(",")]
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        results = {}
        for i, size in enumerate(sizes):
            path = make_corpus(Path(args.data), Path(tmp), size)
            train = args.train_batches if i == 0 else 0
            rnnlm = in_child("rnnlm", str(path), str(train))
            book = in_child("book", str(path), str(args.book_limit_gb))
            results[f"{size} MB"] = {"rnnlm": rnnlm, "book": book}
            print(f"\n{size} MB ({path.stat().st_size:,} bytes)")
            print(json.dumps(results[f"{size} MB"], indent=2))
            for p in Path(tmp).glob(f"{path.name}.*"):
                p.unlink()  # the cache of this size: keep the disk footprint to one corpus
            path.unlink()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

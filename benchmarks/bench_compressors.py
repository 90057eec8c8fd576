"""Bits per character of classical coders on exactly the text a run's test figure scores: the
yardstick for the language models. zlib, bz2 and lzma from the standard library; with the
optional extra (`pip install -e '.[compressors]'`), PPMd orders 4-8 (pyppmd) and zpaq's context
mixing at levels 4 and 5 (zpaq, one thread: one block, the strongest ratio).

    python benchmarks/bench_compressors.py [--data FILE] [--json out.json] [--preprocess none]
    python benchmarks/bench_compressors.py --other FILE  # another text, after the book's train part

The bits of the test part after a prefix are 8 x (compressed size of prefix + test part -
compressed size of the prefix), divided by the test part's characters: a coder that adapts as
it codes, given the same text before the test part that a model trained on. Both splits of
the cleaned book: `book` (the test part is the text after the book's validation windows) and
`contiguous` (80/10/10), each preceded by the train part, and by train + val. With
`--preprocess none`, the text as it is (`data.preprocess=none`: capitals, punctuation, line
breaks), coded as UTF-8 and counted in characters. With `--other FILE`, the whole of another
text read the same way (what `eval.py data.path=FILE split=all` scores), coded after nothing
and after the train part of the book's contiguous split (what a `whole_book` model trained on).
"""

from __future__ import annotations

import argparse
import bz2
import json
import lzma
import os
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

BOOK = os.environ.get("RNNLM_TIMEMACHINE", "data/timemachine.txt")  # docs/development.md


Coder = Callable[[bytes], bytes]
PPMD_ORDERS = (4, 5, 6, 7, 8)
PPMD_MEMORY = 16 << 20  # bytes of model memory (16 MB, pyppmd's default)
ZPAQ_LEVELS = (4, 5)


def stdlib_coders() -> dict[str, Coder]:
    return {
        "zlib -9": lambda data: zlib.compress(data, 9),
        "bz2 -9": lambda data: bz2.compress(data, 9),
        "xz -9e": lambda data: lzma.compress(data, preset=9 | lzma.PRESET_EXTREME),
    }


def ppmd_coders(orders=PPMD_ORDERS) -> dict[str, Coder]:
    """PPMd (variant I) of each order; raises ImportError without pyppmd."""
    import pyppmd

    def coder(order: int) -> Coder:
        return lambda data: pyppmd.compress(data, max_order=order, mem_size=PPMD_MEMORY)

    return {f"PPMd order {k}": coder(k) for k in orders}


def zpaq_coders(levels=ZPAQ_LEVELS) -> dict[str, Coder]:
    """zpaq at each level (`-m4`, `-m5`), one thread and no content hints (on text, hints only
    cost); raises ImportError without zpaq."""
    import zpaq

    def coder(level: int) -> Coder:
        return lambda data: zpaq.compress(data, level=level, threads=1, hints=False)

    return {f"zpaq -m{k}": coder(k) for k in levels}


# The extra's coders: the module each needs, what the line says when it is missing.
OPTIONAL = {"pyppmd": (ppmd_coders, "PPMd orders 4-8"), "zpaq": (zpaq_coders, "zpaq -m4 and -m5")}


def coded_bits(coder: Coder, prefix: bytes, text: bytes) -> int:
    """The bits `coder` spends on `text` after `prefix`."""
    return 8 * (len(coder(prefix + text)) - len(coder(prefix)))


def parts(path: str, split: str, preprocess: str = "book") -> tuple[str, dict]:
    """The book's text as a run reads it (cleaned, or as it is) and its parts, as a run with
    the default settings cuts them (in characters)."""
    from rnnlm.text.data import TextData

    dm = TextData(path=path, split=split, preprocess=preprocess)
    dm.setup()
    symbols = dm.corpus.symbols
    return "".join(symbols[c] for c in dm.corpus.chars.tolist()), dm.parts()


def measure(
    path: str, coders: dict[str, Coder], splits=("book", "contiguous"), preprocess: str = "book"
) -> dict:
    """{split: {"characters": n, "after train": {coder: bpc}, "after train + val": ...}}"""
    figures = {}
    for split in splits:
        text, cut = parts(path, split, preprocess)
        start, stop = cut["test"]
        test = text[start:stop].encode()
        prefixes = {"after train": text[: cut["train"][1]], "after train + val": text[:start]}
        figures[split] = {"characters": stop - start}
        for name, prefix in prefixes.items():
            figures[split][name] = {
                coder: round(coded_bits(code, prefix.encode(), test) / (stop - start), 4)
                for coder, code in coders.items()
            }
    return figures


def measure_other(path: str, other: str, coders: dict[str, Coder], preprocess: str) -> dict:
    """{"characters": n, "after nothing": {coder: bpc}, "after the book's train part": ...}"""
    text, _ = parts(other, "contiguous", preprocess)
    book, cut = parts(path, "contiguous", preprocess)
    prefixes = {"after nothing": "", "after the book's train part": book[: cut["train"][1]]}
    figures = {"text": other, "characters": len(text)}
    for name, prefix in prefixes.items():
        figures[name] = {
            coder: round(coded_bits(code, prefix.encode(), text.encode()) / len(text), 4)
            for coder, code in coders.items()
        }
    return figures


def table(figures: dict) -> str:
    coders = list(next(iter(figures.values()))["after train"])
    lines = [
        "| coder | "
        + " | ".join(f"{s}: after train | {s}: after train + val" for s in figures)
        + " |",
        "|---|" + "---|" * (2 * len(figures)),
    ]
    for coder in coders:
        cells = [
            f"{f[p][coder]:.3f}"
            for f in figures.values()
            for p in ("after train", "after train + val")
        ]
        lines.append(f"| {coder} | " + " | ".join(cells) + " |")
    sizes = ", ".join(f"{s} {f['characters']}" for s, f in figures.items())
    return "\n".join(lines) + f"\n(test part characters: {sizes})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        default=BOOK,
        help="the book (default: $RNNLM_TIMEMACHINE, else data/timemachine.txt)",
    )
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--splits", default="book,contiguous", help="book, contiguous or both")
    parser.add_argument(
        "--preprocess", default="book", choices=["book", "none"], help="data.preprocess"
    )
    parser.add_argument("--other", help="another text, coded after the book's train part")
    args = parser.parse_args()
    coders, missing = stdlib_coders(), []
    for module, (more, what) in OPTIONAL.items():
        try:
            coders.update(more())
        except ImportError:
            missing.append(
                f"error: {module} is not installed, so {what} were not measured (the other "
                "coders were): pip install -e '.[compressors]'"
            )
    if args.other:
        figures = measure_other(args.data, args.other, coders, args.preprocess)
        print(f"{args.other}: {figures['characters']} characters, bits per character")
        for name in ("after nothing", "after the book's train part"):
            print(f"  {name}: " + ", ".join(f"{c} {v:.3f}" for c, v in figures[name].items()))
    else:
        figures = measure(args.data, coders, args.splits.split(","), args.preprocess)
        print(table(figures))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    if missing:
        print("\n".join(missing), file=sys.stderr)
        raise SystemExit(2)


if __name__ == "__main__":
    main()

"""The book for the benchmarks: `--data`, by default the offline copy named by the environment
variable RNNLM_TIMEMACHINE (docs/development.md), else data/timemachine.txt (the download's
cache). Standalone: the scripts that run without rnnlm import it too."""

from __future__ import annotations

import argparse
import os


def add_data_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        default=os.environ.get("RNNLM_TIMEMACHINE", "data/timemachine.txt"),
        help="the book (default: $RNNLM_TIMEMACHINE, else data/timemachine.txt)",
    )

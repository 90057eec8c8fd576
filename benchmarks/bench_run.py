"""Whole runs, start to exit: `python train.py model=M` against the book's loop, side by side.

    python benchmarks/bench_run.py --data data/timemachine.txt [--model scratch]
        [--repeats 3] [--json out.json]
        [--variant "NAME=OVERRIDE OVERRIDE ..."]... [--checkout "NAME=PATH"]...
        [--override KEY=VALUE]...

Each repeat runs every command once, in turn, so all share the machine's state; the table
shows the median wall time and its ratios to the others.
A `--variant` is the rnnlm run with more overrides (a fixed cost left out, say), timed beside
the others: `--variant "no bar=~callbacks.progress_bar"`. A `--checkout` is the same rnnlm run
from another checkout of the project (a git worktree of another commit), its own `src/` first on
the path: `--checkout "before=/tmp/before"`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BOOK = os.environ.get("RNNLM_TIMEMACHINE", "data/timemachine.txt")  # docs/development.md


ROOT = Path(__file__).resolve().parents[1]


def wall_time(cmd: list[str], cwd: Path) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (user + system, steady on a VM whose neighbours steal time),
    and the last lines printed."""
    env = dict(os.environ)
    checkout = Path(cmd[1]).parent
    if checkout != ROOT and (checkout / "src").is_dir():  # another checkout: its own package
        env["PYTHONPATH"] = os.pathsep.join([str(checkout / "src"), env.get("PYTHONPATH", "")])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    last = [line for line in out.stdout.splitlines() if line.strip()]
    return seconds, cpu, " | ".join(last[-2:])


def commands(args: argparse.Namespace, tmp: Path) -> dict[str, list[str]]:
    data = str(Path(args.data).resolve())
    cmds = {
        "rnnlm": [
            sys.executable,
            str(ROOT / "train.py"),
            f"model={args.model}",
            f"data.path={data}",
            f"trainer.max_epochs={args.epochs}",
            *args.override,
            f"hydra.run.dir={tmp}/run",
        ],
    }
    for variant in args.variant:
        name, _, overrides = variant.partition("=")
        if not name or not overrides:
            sys.exit(f"error: --variant {variant!r} is not NAME=OVERRIDES")
        run_dir = f"hydra.run.dir={tmp}/run-{len(cmds)}"  # a run folder of its own settings
        cmds[f"rnnlm, {name}"] = [*cmds["rnnlm"][:-1], run_dir, *overrides.split()]
    for checkout in args.checkout:
        name, _, path = checkout.partition("=")
        train = Path(path).resolve() / "train.py"
        if not name or not train.is_file():
            sys.exit(f"error: --checkout {checkout!r} is not NAME=PATH of a checkout with train.py")
        run_dir = f"hydra.run.dir={tmp}/run-{len(cmds)}"
        cmds[f"rnnlm, {name}"] = [cmds["rnnlm"][0], str(train), *cmds["rnnlm"][2:-1], run_dir]
    book_args = ["--data", data, "--model", args.model, "--epochs", str(args.epochs)]
    cmds["book loop"] = [sys.executable, str(ROOT / "benchmarks/book_loop.py"), *book_args]
    return cmds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        default=BOOK,
        help="the book (default: $RNNLM_TIMEMACHINE, else data/timemachine.txt)",
    )
    parser.add_argument("--model", choices=["scratch", "concise"], default="scratch")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--variant", action="append", default=[], help="NAME=OVERRIDES")
    parser.add_argument("--checkout", action="append", default=[], help="NAME=PATH")
    parser.add_argument(
        "--override", action="append", default=[], help="KEY=VALUE for every rnnlm run"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cmds = commands(args, Path(tmp))
        times: dict[str, list[float]] = {name: [] for name in cmds}
        cpus: dict[str, list[float]] = {name: [] for name in cmds}
        for _ in range(args.repeats):
            for name, cmd in cmds.items():
                seconds, cpu, tail = wall_time(cmd, Path(tmp))
                times[name].append(seconds)
                cpus[name].append(cpu)
                print(f"  {name:22s} {seconds:6.2f} s  {cpu:6.2f} s CPU   {tail}", flush=True)
    medians = {name: statistics.median(t) for name, t in times.items()}
    cpu_medians = {name: statistics.median(t) for name, t in cpus.items()}
    print(f"\nmodel={args.model}, {args.epochs} epochs, median of {args.repeats}, start to exit")
    for name, median in medians.items():
        ratios = "  ".join(
            f"{cpu_medians[name] / cpu_medians[base]:.2f}x {base}"
            for base in medians
            if base != name
        )
        print(f"  {name:22s} {median:6.2f} s  {cpu_medians[name]:6.2f} s CPU   CPU {ratios}")
    if args.json:
        result = {"model": args.model, "epochs": args.epochs, "times_s": times, "median_s": medians}
        result |= {"cpu_s": cpus, "median_cpu_s": cpu_medians}
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

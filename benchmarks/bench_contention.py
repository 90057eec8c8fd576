"""CPU thread policies on a shared machine: one run alone, two at once, and one beside a hog.

    python benchmarks/bench_contention.py --data data/timemachine.txt
        [--settings book,h256] [--policies torch,1,auto,OMP_WAIT_POLICY=PASSIVE] [--repeats 3]
        [--json F]

Each policy is a `threads=` value of train.py (`torch` leaves torch's own default: one
OpenMP thread per core, spinning between ops), or OpenMP environment settings
(`OMP_WAIT_POLICY=PASSIVE`, `GOMP_SPINCOUNT=10000`, joined by `+`) with torch's own thread
count. For every setting and policy the script times, start to exit,
`python train.py model=scratch trainer.max_epochs=E ~logger`:

- alone: one run on an idle machine;
- pair: two identical runs started together (the time until both have finished);
- hog: one run beside a process that keeps one core busy (`while True: pass`).

and prints each time with its ratios: pair / alone and hog / alone of the same policy, and
alone / alone of `torch` (what a policy costs a run that has the machine to itself).
Run it on an otherwise idle machine: it is the only heavy job it expects.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from book_path import add_data_argument

ROOT = Path(__file__).resolve().parents[1]

# name -> (epochs, overrides); "book" is the chapter's run (32 hidden, batch 1024 x 32 steps).
SETTINGS = {
    "book": (20, []),
    "h256": (5, ["model.rnn.num_hiddens=256"]),  # 8x the hidden units: ~10 s an epoch
}
HOG = "while True: pass"


def command(data: str, setting: str, policy: str, folder: Path) -> list[str]:
    """train.py for one setting; a policy NAME=VALUE is an environment setting (with torch's
    own thread count), any other policy a `threads=` value."""
    epochs, overrides = SETTINGS[setting]
    return [
        sys.executable,
        str(ROOT / "train.py"),
        "model=scratch",
        f"data.path={data}",
        f"trainer.max_epochs={epochs}",
        "threads=torch" if "=" in policy else f"threads={policy}",
        "~logger",  # the events writer is not what is measured
        *overrides,
        f"hydra.run.dir={folder}",
    ]


def run_together(cmds: list[list[str]], env: dict[str, str]) -> float:
    """Start every command at once; seconds until the last one exits."""
    start = time.perf_counter()
    procs = [
        subprocess.Popen(c, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for c in cmds
    ]
    for proc, cmd in zip(procs, cmds, strict=True):
        _, err = proc.communicate()
        if proc.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed:\n{err.decode()[-3000:]}")
    return time.perf_counter() - start


def measure(args: argparse.Namespace, setting: str, policy: str, tmp: Path) -> dict[str, float]:
    """Median seconds over `args.repeats` rounds of alone, pair and hog."""
    rounds = [measure_once(args, setting, policy, tmp) for _ in range(args.repeats)]
    return {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}


def measure_once(
    args: argparse.Namespace, setting: str, policy: str, tmp: Path
) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_", "MKL_"))}
    env.update(dict(p.split("=", 1) for p in policy.split("+") if "=" in p))
    # Run folders by number: a policy may hold '=', which Hydra's overrides do not allow.
    folders = [Path(tempfile.mkdtemp(dir=tmp)) for _ in range(3)]
    one = command(args.data, setting, policy, folders[0])
    two = command(args.data, setting, policy, folders[1])
    times = {"alone": run_together([one], env), "pair": run_together([one, two], env)}
    hog = subprocess.Popen([sys.executable, "-c", HOG])
    try:
        time.sleep(0.5)  # the hog is spinning before the run starts
        times["hog"] = run_together([command(args.data, setting, policy, folders[2])], env)
    finally:
        hog.kill()
        hog.wait()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_argument(parser)
    parser.add_argument("--settings", default="book,h256", help=f"of {sorted(SETTINGS)}")
    parser.add_argument("--policies", default="torch,1,auto", help="threads= values")
    parser.add_argument("--repeats", type=int, default=1, help="rounds; the median is shown")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    args.data = str(Path(args.data).resolve())
    settings, policies = args.settings.split(","), args.policies.split(",")
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        sys.exit(f"--settings {','.join(unknown)}: not one of {sorted(SETTINGS)}")
    epochs = ", ".join(f"{name} {SETTINGS[name][0]}" for name in settings)
    print(
        f"{os.cpu_count()} cores; model=scratch, epochs: {epochs}; "
        f"times in seconds, median of {args.repeats}"
    )
    results: dict[str, dict[str, dict[str, float]]] = {}
    header = f"{'setting':8} {'threads':8} {'alone':>7} {'pair':>7} {'hog':>7}"
    print(header + f" {'pair/alone':>10} {'hog/alone':>9} {'alone/torch':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        for setting in settings:
            results[setting] = {}
            for policy in policies:
                t = measure(args, setting, policy, Path(tmp))
                results[setting][policy] = t
                base = results[setting].get("torch", t)["alone"]
                print(
                    f"{setting:8} {policy:8} {t['alone']:7.1f} {t['pair']:7.1f} {t['hog']:7.1f}"
                    f" {t['pair'] / t['alone']:10.2f} {t['hog'] / t['alone']:9.2f}"
                    f" {t['alone'] / base:11.2f}",
                    flush=True,
                )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""The steps of benchmarks/gpu_check.sh that need Python: describe the device, time a whole
run, and merge every step's JSON into one file with a printed table.

    python benchmarks/gpu_steps.py device --device cuda --json W/device.json
    python benchmarks/gpu_steps.py run --json W/run-scratch.json --run-dir R -- python train.py ...
    python benchmarks/gpu_steps.py report --work W --out benchmarks/results/gpu_check.json
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

RATES = ("scratch", "concise", "book loop")


def device(args: argparse.Namespace) -> dict:
    import torch

    found = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "python": platform.python_version(),
        "device": args.device,
    }
    if args.device == "cuda":
        if not torch.cuda.is_available():
            sys.exit("error: --device cuda but torch sees no CUDA GPU (use --dry-run on a CPU)")
        props = torch.cuda.get_device_properties(0)
        found.update(name=props.name, memory_gib=round(props.total_memory / 2**30, 1))
    else:
        found.update(name=platform.processor() or "cpu", threads=torch.get_num_threads())
    return found


def run(args: argparse.Namespace) -> dict:
    """A whole run, start to exit; its results.json when it wrote one."""
    start = time.perf_counter()
    out = subprocess.run(args.command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    row = {
        "command": " ".join(args.command),
        "seconds": round(seconds, 2),
        "ok": out.returncode == 0,
    }
    results = Path(args.run_dir) / "results.json" if args.run_dir else None
    if results is not None and results.is_file():
        saved = json.loads(results.read_text())
        kept = ("val_ppl", "test_ppl", "test_bpc", "test_bpc_dynamic", "epochs")
        row.update({k: saved[k] for k in kept if k in saved})
    if out.returncode != 0:
        said = [
            line for line in out.stderr.splitlines() if line.strip() and "HYDRA_FULL" not in line
        ]
        row["error"] = (said or ["(no output)"])[-1][:300]
    print(f"{row['command'][:100]}: {'ok' if row['ok'] else 'FAILED'} in {seconds:.1f} s")
    return row


def report(args: argparse.Namespace) -> dict:
    work = Path(args.work)
    merged = {p.stem: json.loads(p.read_text()) for p in sorted(work.glob("*.json"))}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(merged, indent=2) + "\n")
    dev = merged.get("device", {})
    name, kind = dev.get("name"), dev.get("device")
    print(f"\n{name} ({kind}), torch {dev.get('torch')}, CUDA {dev.get('cuda')}")
    print("| step | figure |\n|---|---|")
    for name, row in merged.items():
        if name.startswith("run-") and row.get("skipped"):
            print(f"| {name} | skipped: {row['skipped']} |")
        elif name.startswith("run-"):
            ppl = row.get("val_ppl")
            figure = f"{row.get('seconds')} s, val/ppl " + (f"{ppl:.3f}" if ppl else "-")
            print(f"| {name} | {figure if row.get('ok') else 'FAILED: ' + row.get('error', '')} |")
    for row in merged.get("bench_train", {}).get("rows", []):
        rate = {model: f"{row[model]['tokens_per_s']:,.0f}" for model in RATES}
        print(
            f"| bench_train {row['setting']} | tokens/s: scratch {rate['scratch']}, "
            f"concise {rate['concise']}, book loop {rate['book loop']} |"
        )
    print(f"\nwritten: {args.out}")
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True)
    p = sub.add_parser("device")
    p.add_argument("--device", choices=["cpu", "cuda"], required=True)
    p.add_argument("--json", required=True)
    p = sub.add_parser("run")
    p.add_argument("--json", required=True)
    p.add_argument("--run-dir")
    p.add_argument("command", nargs=argparse.REMAINDER)
    p = sub.add_parser("report")
    p.add_argument("--work", required=True)
    p.add_argument("--out", required=True)
    args = parser.parse_args()
    if args.step == "report":
        report(args)
        return
    if args.step == "run" and args.command[:1] == ["--"]:  # the separator before the command
        args.command = args.command[1:]
    row = device(args) if args.step == "device" else run(args)
    Path(args.json).write_text(json.dumps(row, indent=2) + "\n")
    if not row.get("ok", True):
        sys.exit(1)  # recorded above; gpu_check.sh goes on and reports it at the end


if __name__ == "__main__":
    main()

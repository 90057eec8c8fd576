"""benchmarks/gpu_check.sh works before a GPU is ever available: its dry run on the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from .conftest import ROOT


def gpu_check(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable}
    return subprocess.run(
        ["bash", str(ROOT / "benchmarks/gpu_check.sh"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.mark.slow
def test_dry_run_takes_every_step(book, tmp_path):
    out = gpu_check("--dry-run", "--data", str(book), "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr[-3000:]
    figures = json.loads((tmp_path / "gpu_check_dry_run.json").read_text())
    assert figures["device"]["device"] == "cpu" and figures["device"]["torch"]
    for run in ("run-scratch", "run-concise", "run-ddp", "run-whole-book"):
        assert figures[run]["ok"] and figures[run]["val_ppl"] > 1, figures[run]
    for run in ("run-scratch-graphs", "run-concise-graphs"):  # a GPU's only
        assert figures[run]["skipped"] == "model.cuda_graphs=true needs a CUDA GPU"
    assert figures["run-whole-book"]["test_bpc_dynamic"] > 0  # the recipe's own test figures
    assert [row["setting"] for row in figures["bench_train"]["rows"]] == ["tiny"]
    graphs = figures["cuda_graphs"]
    assert graphs["eager ms/step"] > 0
    assert "reduce-overhead ms/step" in graphs or "reduce-overhead error" in graphs
    assert "| CUDA graphs |" in out.stdout


def test_bad_arguments_are_one_line(tmp_path):
    out = gpu_check("--fast")
    assert out.returncode == 2 and out.stderr.strip() == (
        "error: --fast is not an option: use --dry-run, --data FILE, --out DIR"
    )
    out = gpu_check("--data", str(tmp_path / "none.txt"))
    assert out.returncode == 2 and "does not exist" in out.stderr


@pytest.mark.slow
def test_a_failed_step_is_recorded_and_the_others_still_run(tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("far too short\n")  # fewer characters than one window: no fallback fits
    out = gpu_check("--dry-run", "--data", str(short), "--out", str(tmp_path))
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1] == (
        "error: these steps failed: run-scratch run-concise run-whole-book bench_train "
        "cuda_graphs run-ddp"
    )
    figures = json.loads((tmp_path / "gpu_check_dry_run.json").read_text())
    assert figures["device"]["device"] == "cpu"  # the step that could run did
    for step in ("run-scratch", "run-concise", "run-ddp", "bench_train", "cuda_graphs"):
        assert figures[step]["ok"] is False, figures[step]
    assert figures["run-scratch"]["error"].startswith("error: data.num_train")  # its one line


def test_bench_run_times_each_variant_in_a_run_folder_of_its_own(tmp_path, monkeypatch):
    import argparse
    import importlib.util

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # its sibling book_path
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "benchmarks/bench_run.py")
    bench_run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_run)
    args = argparse.Namespace(
        data="book.txt", model="scratch", epochs=3, d2l_python=None,
        variant=["2 threads=threads=2", "lean=~logger ~callbacks.progress_bar"], checkout=[],
        override=[],
    )  # fmt: skip
    cmds = bench_run.commands(args, tmp_path)
    assert list(cmds) == ["rnnlm", "rnnlm, 2 threads", "rnnlm, lean", "book loop"]
    assert cmds["rnnlm, 2 threads"][-1] == "threads=2"
    assert cmds["rnnlm, lean"][-2:] == ["~logger", "~callbacks.progress_bar"]
    runs = [[a for a in c if a.startswith("hydra.run.dir=")] for c in list(cmds.values())[:3]]
    assert runs == [[f"hydra.run.dir={tmp_path}/{name}"] for name in ("run", "run-1", "run-2")]
    args.variant = ["no equals sign"]
    with pytest.raises(SystemExit, match="is not NAME=OVERRIDES"):
        bench_run.commands(args, tmp_path)
    # Another checkout (a worktree of another commit): its train.py, run with its own src/.
    other = tmp_path / "before"
    (other / "src").mkdir(parents=True)
    (other / "train.py").write_text("")
    args.variant, args.checkout = [], [f"before={other}"]
    cmds = bench_run.commands(args, tmp_path)
    assert cmds["rnnlm, before"][1] == str(other / "train.py")
    assert cmds["rnnlm, before"][2:-1] == cmds["rnnlm"][2:-1]
    args.checkout = [f"gone={tmp_path / 'nowhere'}"]
    with pytest.raises(SystemExit, match="is not NAME=PATH of a checkout with train.py"):
        bench_run.commands(args, tmp_path)

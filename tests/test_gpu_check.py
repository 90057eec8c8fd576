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
    assert "| bench_train tiny |" in out.stdout


def test_bad_arguments_are_one_line(tmp_path):
    out = gpu_check("--fast")
    assert out.returncode == 2 and out.stderr.strip() == (
        "error: --fast is not an option: use --dry-run, --data FILE, --out DIR"
    )
    out = gpu_check("--data", str(tmp_path / "none.txt"))
    assert out.returncode == 2 and "does not exist" in out.stderr

"""Sweep reports (a Hydra callback, conf/hydra/default.yaml): after every job of a multirun,
`summary.csv` in the sweep folder, one row per job; the curves are TensorBoard's."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from rnnlm.files import write_bytes, write_json

COLUMNS = (
    "job status overrides best_val_ppl val_ppl train_ppl test_ppl test_bpc val_bits_per_char "
    "test_bits_per_char epochs seconds parameters error"
).split()


def safe_dirname(text: str, limit: int = 200) -> str:
    """A folder name from Hydra's override_dirname: only [A-Za-z0-9._,=+-], at most `limit`."""
    return re.sub(r"[^A-Za-z0-9._,=+-]+", "_", text)[:limit] or "defaults"


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("rnnlm_safe_dirname"):
        OmegaConf.register_new_resolver("rnnlm_safe_dirname", safe_dirname)


class SweepSummary(Callback):
    """Each job's row is written when it ends, failed jobs too, so the report exists however the
    sweep ends; a failed job is also said at once (Hydra raises the first failure at the end)."""

    def __init__(self) -> None:
        self.started: dict[int, float] = {}

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if config.hydra.mode.name == "MULTIRUN":
            self.started[config.hydra.job.num] = time.perf_counter()

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if config.hydra.mode.name != "MULTIRUN":
            return
        job_dir, num = Path(config.hydra.runtime.output_dir), config.hydra.job.num
        row = {"job": job_dir.name, "overrides": " ".join(job_return.overrides or [])}
        row["seconds"] = round(time.perf_counter() - self.started.pop(num, time.perf_counter()), 2)
        if job_return.status == JobStatus.COMPLETED:
            row["status"] = "ok"
            results = job_dir / "results.json"
            if results.is_file():
                row.update(json.loads(results.read_text()))
        else:
            row["status"] = "failed"
            row["error"] = str(job_return._return_value).splitlines()[0][:300]
        write_json(job_dir / "job.json", row)
        summary = write_summary(Path(config.hydra.sweep.dir))
        if row["status"] == "failed":
            print(f"job {row['job']} failed: {row['error']}\nsweep summary: {summary}", flush=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        print(f"sweep summary: {Path(config.hydra.sweep.dir) / 'summary.csv'}")  # written per job


def write_summary(sweep_dir: Path) -> Path:
    rows = [json.loads(p.read_text()) for p in sweep_dir.glob("*/job.json")]
    rows.sort(key=lambda row: int(row["job"].split("_")[0]))
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_bytes(sweep_dir / "summary.csv", table.getvalue().encode())
    return sweep_dir / "summary.csv"

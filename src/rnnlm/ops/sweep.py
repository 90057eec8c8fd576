"""Sweep reports: after every job of a Hydra multirun, `summary.csv` (one row per job) and
`summary.png` (validation perplexity curves, best per job) in the sweep folder."""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import textwrap
import time
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from rnnlm.ops.files import write_bytes, write_json

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
    """Hydra callback: each job's row is written when it ends, so failed jobs are rows too
    and the report exists even when a failure stops the sweep."""

    def __init__(self) -> None:
        self.started: dict[int, float] = {}

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if config.hydra.mode.name == "MULTIRUN":
            self.started[config.hydra.job.num] = time.perf_counter()

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if config.hydra.mode.name != "MULTIRUN":
            return
        job_dir = Path(config.hydra.runtime.output_dir)
        num = config.hydra.job.num
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
        write_summary(Path(config.hydra.sweep.dir))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        write_summary(sweep_dir)
        print(f"sweep summary: {sweep_dir / 'summary.csv'} and {sweep_dir / 'summary.png'}")


def write_summary(sweep_dir: Path) -> None:
    rows = [json.loads(p.read_text()) for p in sweep_dir.glob("*/job.json")]
    rows.sort(key=lambda row: int(row["job"].split("_")[0]))
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_bytes(sweep_dir / "summary.csv", table.getvalue().encode())
    plot_summary(sweep_dir, rows)


def val_curve(job_dir: Path) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    # Its reader logs every events file it moves through at INFO: noise in a sweep's output.
    logging.getLogger("tensorboard").setLevel(logging.WARNING)
    events = EventAccumulator(str(job_dir), size_guidance={"scalars": 0})
    events.Reload()
    if "val/ppl" not in events.Tags()["scalars"]:
        return []
    return [(i + 1, e.value) for i, e in enumerate(events.Scalars("val/ppl"))]


LONG_DECIMALS = re.compile(r"(\d\.\d{4})\d+")  # an Optuna trial's 1.5607064635047139 -> 1.5607


def short_labels(rows: list[dict]) -> tuple[list[str], str]:
    """Each job's overrides without those every job shares (returned apart, for a title)."""
    overrides = [row["overrides"].split() for row in rows]
    common = set.intersection(*map(set, overrides)) if len(rows) > 1 else set()
    labels = [
        LONG_DECIMALS.sub(r"\1", " ".join(o for o in job if o not in common)) or row["job"]
        for job, row in zip(overrides, rows, strict=True)
    ]
    shared = " ".join(o for o in overrides[0] if o in common) if rows else ""
    return labels, shared


def plot_summary(sweep_dir: Path, rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    labels, shared = short_labels(rows)
    # constrained layout makes room for the legend below the curves (tight_layout warns there)
    fig, (curves, bars) = plt.subplots(1, 2, figsize=(14, 5.5), layout="constrained")
    best = []
    for row, label in zip(rows, labels, strict=True):
        points = val_curve(sweep_dir / row["job"])
        if points:
            label = textwrap.fill(label, 60)
            curves.plot(*zip(*points, strict=True), marker="o", ms=3, label=label)
        best.append(row.get("best_val_ppl") or float("nan"))
    curves.set(xlabel="epoch", ylabel="val/ppl", title="validation perplexity", yscale="log")
    curves.yaxis.set_major_formatter(ScalarFormatter())  # plain numbers on the log axis
    curves.yaxis.set_minor_formatter(ScalarFormatter())
    if curves.lines:  # below the chart, so it covers no curve
        curves.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    colors = ["C0" if r["status"] == "ok" else "C3" for r in rows]
    drawn = bars.barh(range(len(rows)), [float(b) for b in best], color=colors)
    bars.bar_label(drawn, fmt="%.3f", fontsize=7, padding=2)
    bars.set_yticks(range(len(rows)), [textwrap.fill(label, 40) for label in labels], fontsize=7)
    bars.invert_yaxis()
    bars.set(xlabel="best val/ppl (red: failed)", title="best validation perplexity per job")
    if shared:
        fig.suptitle(textwrap.fill(f"every job: {shared}", 180), fontsize=8)
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    write_bytes(sweep_dir / "summary.png", png.getvalue())

"""Sweeps and dashboards: multirun layout, sweep report, HPARAMS, grad norm, experiments, Optuna."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from rnnlm.ops.sweep import safe_dirname
from rnnlm.train import train

from .conftest import CONF, TINY_OVERRIDES, cli, sweep_args
from .helpers import events, hparams_plugin, read_rows, scalars

# The language-model experiments (experiment=sine has its own data: tests/test_sine.py).
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml") if p.stem != "sine")


@pytest.mark.slow
def test_multirun_2x2_layout_and_report(tiny_corpus, tmp_path):
    sweep = tmp_path / "sweep"
    out = cli(
        "train.py",
        "-m",
        "model=scratch,concise",
        "model.rnn.num_hiddens=8,16",
        *sweep_args(tiny_corpus, sweep),
        "trainer.max_epochs=2",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Directory watcher" not in out.stdout + out.stderr  # TensorBoard's reader is quiet
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    # <num>_<the job's overrides>, as Hydra's override_dirname (sorted, comma-separated)
    assert sorted(j.split("_", 1)[1] for j in jobs) == sorted(
        f"model.rnn.num_hiddens={h},model={m},trainer.max_epochs=2"
        for h in (8, 16)
        for m in ("scratch", "concise")
    )
    assert sorted(int(j.split("_")[0]) for j in jobs) == [0, 1, 2, 3]
    rows = read_rows(sweep / "summary.csv")
    assert sorted(r["job"] for r in rows) == jobs and all(r["status"] == "ok" for r in rows)
    for row in rows:
        curve = scalars(sweep / row["job"])["val/ppl"]
        assert float(row["best_val_ppl"]) == pytest.approx(min(curve), rel=1e-6)
        assert float(row["val_ppl"]) == pytest.approx(curve[-1], rel=1e-6)
        assert int(row["epochs"]) == 2 and int(row["parameters"]) > 0
        assert float(row["seconds"]) > 0 and math.isfinite(float(row["train_ppl"]))
        assert float(row["test_ppl"]) == pytest.approx(scalars(sweep / row["job"])["~test/ppl"][0])
        assert float(row["test_bpc"]) == pytest.approx(math.log2(float(row["test_ppl"])))
    assert f"sweep summary: {sweep / 'summary.csv'}" in out.stdout
    # TensorBoard's HPARAMS tab: no run writes an experiment (one would be every run's columns
    # under a --logdir above this sweep); the columns it computes are what the sweep varied.
    assert not list(sweep.glob("events.out.tfevents.*"))
    assert not any("_hparams_/experiment" in hparams_plugin(sweep / job) for job in jobs)
    differ = ["model", "model/_target_", "model/rnn/_target_", "model/rnn/num_hiddens"]
    assert columns_tensorboard_shows(sweep) == differ  # the classes model= chose, too
    for row in rows:
        settings = logged_settings(sweep / row["job"])
        assert f"model.rnn.num_hiddens={settings['model/rnn/num_hiddens']}" in row["overrides"]
        assert f"model={settings['model']}" in row["overrides"].split()


@pytest.mark.slow
def test_failed_job_is_a_failed_row(tiny_corpus, tmp_path):
    sweep = tmp_path / "sweep"
    out = cli(
        "train.py",
        "-m",
        "model.lr=1,-1",
        *sweep_args(tiny_corpus, sweep),
        "trainer.max_epochs=1",
        cwd=tmp_path,
    )
    assert out.returncode != 0
    rows = read_rows(sweep / "summary.csv")
    assert [r["status"] for r in rows] == ["ok", "failed"]
    assert "model.lr=-1" in rows[1]["error"] and "model.lr=-1" in rows[1]["overrides"]
    # The failed job is said when it fails, with the summary; the sweep ends without a traceback.
    said = out.stdout.splitlines()
    failed = said.index(f"job {rows[1]['job']} failed: {rows[1]['error']}")
    assert said[failed + 1] == f"sweep summary: {sweep / 'summary.csv'}"
    assert "Traceback" not in out.stderr
    assert "model.lr=-1 is not allowed: it must be a number > 0" in out.stderr.splitlines()


def test_safe_dirname():
    assert safe_dirname("data.path=../a b/c.txt,seed=1") == "data.path=.._a_b_c.txt,seed=1"
    assert safe_dirname("") == "defaults"


def columns_tensorboard_shows(logdir: Path) -> list[str]:
    """The HPARAMS columns in which the runs under `logdir` differ, as TensorBoard's own
    backend computes them from the runs' settings."""
    from tensorboard.plugins.hparams import backend_context, metadata

    runs = {
        str(r.parent): {metadata.SESSION_START_INFO_TAG: hparams_content(r.parent)}
        for r in logdir.rglob("events.out.tfevents.*")
    }
    infos = backend_context.Context(None)._compute_hparam_infos(runs)
    return sorted(h.name for h in infos if h.differs)


def hparams_content(run: Path) -> bytes:
    return events(run).PluginTagToContent("hparams")["_hparams_/session_start_info"]


def logged_settings(run_dir: Path) -> dict[str, str | float]:
    info = hparams_plugin(run_dir)["_hparams_/session_start_info"].session_start_info
    return {name: getattr(v, v.WhichOneof("kind")) for name, v in info.hparams.items()}


def test_hparams_row_and_its_metrics(compose_train, tiny_corpus, tmp_path):
    cfg = compose_train(f"data.path={tiny_corpus}", *TINY_OVERRIDES, "model.lr=4")
    final = train(cfg, tmp_path)
    logged = scalars(tmp_path)
    # The HPARAMS metrics are the last values of these scalars.
    assert logged["val/ppl_best"][-1] == pytest.approx(min(logged["val/ppl"]), rel=1e-6)
    assert logged["val/ppl_best"] == [min(logged["val/ppl"][: i + 1]) for i in range(3)]
    assert logged["val/ppl"][-1] == pytest.approx(final, rel=1e-6)
    assert len(logged["~test/ppl"]) == 1 and logged["train/lr"] == [4.0] * 3
    assert "epoch" not in logged and not any(tag.startswith("hp/") for tag in logged)
    # TIME SERIES and SCALARS open on the first two groups of tags in code-point order
    # (benchmarks/board_check.py reads them in a browser): train and val, the test dots last.
    assert sorted({tag.split("/")[0] for tag in logged}) == ["train", "val", "~test"]
    records = hparams_plugin(tmp_path)
    # A run has no experiment of its own: TensorBoard would show one run's columns for all.
    assert set(records) == {"_hparams_/session_start_info", "_hparams_/session_end_info"}
    settings = logged_settings(tmp_path)
    assert settings["model/rnn/num_hiddens"] == "16" and settings["model/lr"] == "4"
    assert settings["data/batch_size"] == "64" and settings["seed"] == "42"
    assert settings["model/rnn/activation"] == "tanh" and settings["data/token"] == "char"
    # Another run beside it, of another kind: every setting in which the two differ is a
    # column over both (what --logdir outputs shows), not only what one sweep varied.
    other = ["model.lr=2", "model.rnn.activation=relu", "data.token=byte", "data.preprocess=none"]
    train(compose_train(f"data.path={tiny_corpus}", *TINY_OVERRIDES, *other), tmp_path / "b")
    differ = columns_tensorboard_shows(tmp_path)
    assert {"model/lr", "model/rnn/activation", "data/token", "data/preprocess"} <= set(differ)
    assert "seed" not in differ and "model/rnn/num_hiddens" not in differ


def test_grad_norm_is_logged_before_clipping(compose_train, tiny_corpus, tmp_path):
    cfg = compose_train(
        f"data.path={tiny_corpus}",
        *TINY_OVERRIDES,
        "experiment=no_clip",
        "model.rnn.sigma=1.0",  # large recurrent weights: exploding gradients
        "trainer.log_every_n_steps=1",
    )
    train(cfg, tmp_path)
    norms = scalars(tmp_path)["train/grad_norm"]
    assert len(norms) == 30 and max(norms) > 1.0  # above the book's clip value of 1
    # With clipping on, the logged norm is still the one before clipping.
    cfg = compose_train(
        f"data.path={tiny_corpus}",
        *TINY_OVERRIDES,
        "model.rnn.sigma=1.0",
        "trainer.log_every_n_steps=1",
        "trainer.gradient_clip_val=1",
    )
    train(cfg, tmp_path / "clipped")
    assert max(scalars(tmp_path / "clipped")["train/grad_norm"]) > 1.0


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes_and_trains(name, compose_train, tiny_corpus, tmp_path):
    # The tiny text's 10% parts hold 138 characters: room for 4 streams of 8 steps, not 64.
    streams = ["data.batch_size=4"] if name in ("whole_book", "raw_book") else []
    cfg = compose_train(
        f"data.path={tiny_corpus}",
        f"experiment={name}",
        *TINY_OVERRIDES,
        *streams,
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=2",
        "+trainer.limit_val_batches=2",
    )
    assert math.isfinite(train(cfg, tmp_path))
    assert scalars(tmp_path)["val/ppl"]


@pytest.mark.slow
@pytest.mark.extra("optuna")
def test_optuna_sweep_two_trials(tiny_corpus, tmp_path):
    sweep = tmp_path / "sweep"
    out = cli(
        "train.py",
        "-m",
        "hparams_search=optuna",
        "hydra.sweeper.n_trials=2",
        *sweep_args(tiny_corpus, sweep),
        "trainer.max_epochs=1",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    best = (sweep / "optimization_results.yaml").read_text()
    assert "best_value" in best
    value = float(best.split("best_value:")[1].split()[0])
    assert math.isfinite(value) and value > 1
    rows = read_rows(sweep / "summary.csv")
    assert len(rows) == 2 and all(math.isfinite(float(r["val_ppl"])) for r in rows)

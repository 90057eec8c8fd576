"""Many processes: DDP sharding without repeated validation windows, the same val/ppl as one
process, and one run folder for a `trainer=ddp` run."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys

import pytest
import pytorch_lightning as pl
import torch
from torchmetrics import Metric

import rnnlm.text.sampler
from rnnlm.lm import RNNLMScratch
from rnnlm.ops.trainer import bare_trainer
from rnnlm.rnn import RNNScratch
from rnnlm.text.data import TextData
from rnnlm.text.sampler import WindowSampler

from .conftest import ROOT, TINY_OVERRIDES, cli
from .helpers import core, scalars, thread_probes, two_cpu_processes


@pytest.mark.parametrize("n, world", [(300, 2), (301, 2), (301, 3), (10, 4)])
def test_sampler_shards_every_window_once(monkeypatch, n, world):
    def shard(shuffle, rank):
        monkeypatch.setattr(rnnlm.text.sampler, "rank_and_world", lambda: (rank, world))
        sampler = WindowSampler(n, 4, shuffle, seed=5)
        batches = list(sampler)
        assert len(sampler) == len(batches) and all(len(b) <= 4 for b in batches)
        return [i for b in batches for i in b.tolist()]

    val = [i for r in range(world) for i in shard(False, r)]
    assert sorted(val) == list(range(n))  # validation: each window exactly once
    train = [shard(True, r) for r in range(world)]
    assert len({len(t) for t in train}) == 1  # equal steps on every rank
    seen = [i for t in train for i in t]
    assert set(seen) == set(range(n)) and len(seen) < n + world


def tiny_trainer(devices: int) -> pl.Trainer:
    return bare_trainer(
        accelerator="cpu",
        devices=devices,
        strategy="ddp_spawn" if devices > 1 else "auto",
        max_epochs=1,
        num_sanity_val_steps=0,
    )


def metric_states(model: pl.LightningModule) -> dict[str, torch.Tensor]:
    """Every metric state of `model`, by module and state name."""
    return {
        f"{name}.{key}": value
        for name, module in model.named_modules()
        if isinstance(module, Metric)
        for key, value in module.metric_state.items()
    }


@pytest.mark.parametrize("sampling", ["windows", "sequential"])
@pytest.mark.slow
def test_ddp_spawn_trains_and_matches_one_process(tiny_corpus, sampling):
    pl.seed_everything(0)
    if sampling == "windows":
        dm = TextData(batch_size=64, num_steps=8, num_train=600, num_val=301, path=str(tiny_corpus))
    else:  # 2 x 4 training streams, 3 validation streams shared out as 2 + 1
        dm = TextData(
            batch_size=4,
            num_steps=8,
            path=str(tiny_corpus),
            split="contiguous",
            sampling=sampling,
            eval_streams=3,
        )
    dm.setup()
    model = RNNLMScratch(core(RNNScratch, num_hiddens=16), dm.vocab.idx_to_token)
    ddp = tiny_trainer(devices=2)
    ddp.fit(model, dm)  # 2 processes: train one epoch, then validate the trained weights
    ppl_ddp, tokens_ddp = (float(ddp.callback_metrics[k]) for k in ("val/ppl", "val/tokens"))
    # Each process added into its own metric states: the parent's were never updated.
    fresh = RNNLMScratch(**model.hparams)
    after, untouched = metric_states(model), metric_states(fresh)
    assert after.keys() == untouched.keys() and len(after) >= 10
    # ...but for the best val/ppl, a persistent state: in the weights Lightning hands back.
    best = after.pop("val_ppl_best.min_value")
    assert best == ddp.callback_metrics["val/ppl_best"] == ddp.callback_metrics["val/ppl"]
    assert all(torch.equal(after[k], untouched[k]) for k in after), after
    # The reference: a fresh model with the trained weights, in this process.
    fresh.load_state_dict(model.state_dict())
    one = tiny_trainer(devices=1).validate(fresh, dm, verbose=False)[0]
    expected = 301 * 8 if sampling == "windows" else dm.examples("val").num_targets
    assert tokens_ddp == one["val/tokens"] == expected  # every validation token seen once
    assert ppl_ddp == pytest.approx(one["val/ppl"], rel=1e-4)


@pytest.mark.slow
def test_cli_ddp_spawn_run_reports_the_best_checkpoints_figure(tiny_corpus, tmp_path):
    """results.json (what a sweep's summary reads) has the best val/ppl that selected the
    checkpoint, the epochs trained and the test figure of that checkpoint; every rank computes
    with the `threads` count."""
    run = tmp_path / "run"
    args = two_cpu_processes("ddp_spawn", tiny_corpus)
    probe = [
        "+callbacks.probe._target_=tests.helpers.ThreadProbe",
        f"+callbacks.probe.folder={run}",
    ]
    out = cli("train.py", *args, "threads=1", *probe, f"hydra.run.dir={run}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert thread_probes(run) == {r: {"torch": 1, "env": "1"} for r in (0, 1)}
    results = json.loads((run / "results.json").read_text())
    (best,) = (run / "checkpoints").glob("best-*.ckpt")
    saved = torch.load(best, weights_only=True)
    selecting = next(v for k, v in saved["callbacks"].items() if "val/ppl" in k)
    assert math.isfinite(results["best_val_ppl"]) and results["epochs"] == 3
    assert results["best_val_ppl"] == pytest.approx(float(selecting["best_model_score"]), rel=1e-6)
    assert f"ppl{results['best_val_ppl']:.3f}.ckpt" in best.name
    assert results["test_checkpoint"] == str(best)
    assert scalars(run)["~test/ppl"] == [pytest.approx(results["test_ppl"], rel=1e-6)]


@pytest.mark.slow
def test_cli_ddp_run_leaves_one_run_folder(tiny_corpus, tmp_path):
    out = cli(
        "train.py", *two_cpu_processes("ddp", tiny_corpus), "trainer.max_epochs=2", cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr[-3000:]
    days = list((tmp_path / "outputs").iterdir())
    runs = [p for day in days for p in day.iterdir()]
    assert len(days) == 1 and len(runs) == 1, runs
    run = runs[0]
    assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "results.json").is_file()
    # Rank 1 ran in the same folder but wrote no events: one writer pid.
    assert len({p.name.split(".")[-2] for p in run.glob("events.out.tfevents.*")}) == 1
    assert out.stdout.count("val/ppl ") == 1  # only rank 0 reports


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
@pytest.mark.slow
def test_a_stopped_run_keeps_last_ckpt_and_resume_continues_steps(
    tiny_corpus, tmp_path, signum, code
):
    import time

    from rnnlm.checkpoints import load_lm

    from .helpers import scalars

    args = [
        sys.executable,
        str(ROOT / "train.py"),
        f"data.path={tiny_corpus}",
        *TINY_OVERRIDES,
        "trainer.max_epochs=500",
    ]
    stderr = (tmp_path / "killed.err").open("w")
    proc = subprocess.Popen(
        [*args, f"hydra.run.dir={tmp_path}/killed"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        # A suite started in the background inherits an ignored SIGINT: the run must see it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    last = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    deadline = time.time() + 120
    while not last.exists() and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)  # a few more epochs
    proc.send_signal(signum)
    # Not a success: exit 128 + the signal, one line saying what is kept and how to carry on.
    assert proc.wait(timeout=60) == code
    stderr.close()
    message = (tmp_path / "killed.err").read_text()
    assert f"error: training was stopped by {signum.name} in epoch" in message
    assert f"{last} holds the last finished epoch: carry on with python train.py " in message
    assert f"ckpt_path=last hydra.run.dir={tmp_path}/killed" in message
    assert load_lm(last).vocab is not None  # the last finished epoch, loadable
    killed = scalars(tmp_path / "killed")
    assert 0 < len(killed["train/loss"]) < 500
    resumed_dir = tmp_path / "resumed"
    out = subprocess.run(
        [
            *args[:-1],
            "trainer.max_epochs=" + str(len(killed["train/loss"]) + 2),
            f"ckpt_path={last}",
            f"hydra.run.dir={resumed_dir}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    from .helpers import events

    def steps(run):
        return [e.step for e in events(run).Scalars("train/loss")]

    before, after = steps(tmp_path / "killed"), steps(resumed_dir)
    # The killed run may have logged one more epoch than its last.ckpt holds; the resumed run
    # continues from the checkpoint's step, so the union has no gap and no duplicate step.
    saved_epochs = torch_load_epoch(last) + 1
    combined = before[:saved_epochs] + after
    assert (
        combined == sorted(set(combined))
        and len(after) == len(killed["train/loss"]) + 2 - saved_epochs
    )


def torch_load_epoch(path) -> int:
    import torch

    return torch.load(path, weights_only=True)["epoch"]


@pytest.mark.extra("slurm")
def test_slurm_launcher_starts_one_task_per_device():
    from hydra import compose, initialize_config_dir

    from .conftest import CONF

    overrides = ["hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=3"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.tasks_per_node, launcher.nodes) == (4, 3)


@pytest.mark.slow
@pytest.mark.extra("slurm")
def test_submitit_local_launcher_runs_a_sweep(tiny_corpus, tmp_path):
    """The cluster path (jobs pickled and run by submitit's executor) on this machine."""
    from .conftest import sweep_args
    from .helpers import read_rows

    sweep = tmp_path / "sweep"
    out = cli(
        "train.py",
        "-m",
        "hydra/launcher=submitit_local",
        "model=scratch,concise",
        *sweep_args(tiny_corpus, sweep),
        "trainer.max_epochs=1",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    rows = read_rows(sweep / "summary.csv")
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert all(1 < float(r["val_ppl"]) < 28 for r in rows)  # below a uniform guess
    assert list((sweep / ".submitit").glob("*/*_result.pkl"))  # submitit ran the jobs


def test_under_slurm_requeueing_is_left_to_submitit(
    monkeypatch, compose_train, tiny_corpus, tmp_path
):
    from .helpers import built

    slurm = {
        "SLURM_NTASKS": "1",
        "SLURM_JOB_NAME": "rnnlm",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_NODEID": "0",
        "SLURM_JOB_ID": "42",
    }
    for key, value in slurm.items():
        monkeypatch.setenv(key, value)
    cfg = compose_train(f"data.path={tiny_corpus}", *TINY_OVERRIDES)
    _, _, trainer = built(cfg, tmp_path)
    environment = trainer._accelerator_connector.cluster_environment
    assert type(environment).__name__ == "SLURMEnvironment" and not environment.auto_requeue
    monkeypatch.delenv("SLURM_NTASKS")
    _, _, trainer = built(cfg, tmp_path)  # off SLURM: Lightning's default environment
    assert type(trainer._accelerator_connector.cluster_environment).__name__ != "SLURMEnvironment"

"""The CPU thread policy (`threads=auto|torch|N`): what it chooses, and that every entry point
applies it in its own process and in DDP ranks."""

from __future__ import annotations

import os

import pytest
import torch

from rnnlm.errors import UserError
from rnnlm.fast import threads

from .conftest import TINY_OVERRIDES, cli
from .helpers import assert_one_line_error, thread_probes, two_cpu_processes


@pytest.fixture
def restore_threads(monkeypatch):
    """Tests that set torch's thread count in this process give it back afterwards."""
    before = torch.get_num_threads()
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(name, os.environ.get(name, ""))  # restored by monkeypatch
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("value", ["auto", "torch", 1, 3])
def test_allowed_values(value):
    assert threads.parse(value) == value


@pytest.mark.parametrize("value", [0, -1, 2.5, "all", None, True])
def test_other_values_are_refused(value):
    with pytest.raises(UserError, match="is not allowed: use auto, torch, or an integer >= 1"):
        threads.parse(value)


def test_auto_gives_small_steps_one_thread_and_large_ones_every_core(monkeypatch):
    monkeypatch.setattr(threads, "cores", lambda: 8)
    book = 1024 * 32 * (32 + 28)  # the book's run
    large = 1024 * 256 * (256 + 28)
    assert book < threads.SHARE_FROM <= large
    assert threads.per_process(book) == 1
    assert threads.per_process(large) == 8
    assert threads.per_process(large, processes=2) == 4  # DDP ranks share the machine
    assert threads.per_process(large, processes=16) == 1


def test_choose_sets_torch_and_the_environment(restore_threads):
    assert threads.choose(1, work=10**9) == 1
    assert torch.get_num_threads() == 1 and os.environ["OMP_NUM_THREADS"] == "1"
    assert threads.choose("auto", work=10) == 1
    torch.set_num_threads(2)
    assert threads.choose("torch", work=10) == 2  # left as torch has it


@pytest.mark.slow
def test_train_applies_the_policy_in_its_process(tiny_corpus, tmp_path):
    probe = [
        "+callbacks.probe._target_=tests.helpers.ThreadProbe",
        f"+callbacks.probe.folder={tmp_path}",
    ]
    out = cli(
        "train.py",
        f"data.path={tiny_corpus}",
        *TINY_OVERRIDES,
        "trainer.max_epochs=1",
        *probe,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert thread_probes(tmp_path) == {0: {"torch": 1, "env": "1"}}  # auto: a tiny model


@pytest.mark.slow
def test_every_ddp_rank_computes_with_the_chosen_count(tiny_corpus, tmp_path):
    out = cli(
        "train.py",
        *two_cpu_processes("ddp_spawn", tiny_corpus),
        "threads=2",
        "trainer.max_epochs=1",
        "+callbacks.probe._target_=tests.helpers.ThreadProbe",
        f"+callbacks.probe.folder={tmp_path}",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert thread_probes(tmp_path) == {r: {"torch": 2, "env": "2"} for r in (0, 1)}


@pytest.mark.parametrize("task", ["eval", "generate"])
def test_eval_and_generate_apply_the_policy(task, trained_run, restore_threads, tmp_path):
    from hydra import compose, initialize_config_dir

    from .conftest import CONF

    torch.set_num_threads(2)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name=task, overrides=[f"ckpt_path={trained_run[1]}", "threads=1"])
    if task == "eval":
        from rnnlm.evaluate import evaluate

        evaluate(cfg)
    else:
        from rnnlm.generate import generate

        generate(cfg)
    assert torch.get_num_threads() == 1


@pytest.mark.parametrize("script", ["train.py", "eval.py", "generate.py"])
def test_a_bad_thread_count_is_one_line(script, tmp_path):
    out = cli(script, "threads=0", cwd=tmp_path)
    assert_one_line_error(out, "threads=0 is not allowed: use auto, torch, or an integer >= 1")
    assert list(tmp_path.iterdir()) == []  # no run folder, no log


@pytest.mark.parametrize("value, shares", [("auto", True), (1, False)])
def test_training_shares_free_cores_also_for_small_steps(
    value, shares, compose_train, tiny_corpus, tmp_path, monkeypatch, restore_threads
):
    # The book's setting starts on one thread; while training, ShareCores may take every core
    # this process is allotted (two here), and a fixed count is left alone.
    from rnnlm.fast.cpu import ShareCores
    from rnnlm.train import build

    monkeypatch.setattr(threads, "cores", lambda: 2)
    cfg = compose_train(f"data.path={tiny_corpus}", *TINY_OVERRIDES, f"threads={value}")
    _, _, trainer = build(cfg, tmp_path)
    assert torch.get_num_threads() == 1
    sharing = [c for c in trainer.callbacks if isinstance(c, ShareCores)]
    assert [c.most for c in sharing] == ([2] if shares else [])
    busy = {"elsewhere": 0.0}
    if shares:
        (share,) = sharing
        monkeypatch.setattr(share.watch, "cores", lambda: busy["elsewhere"])
        share.next_check = 0
        share.on_train_batch_end(trainer)
        assert torch.get_num_threads() == 2  # the machine is free: both cores
        busy["elsewhere"], share.next_check = 1.0, 0
        share.on_train_batch_end(trainer)
        assert torch.get_num_threads() == 1  # another process took one: give it back

"""The `threads` setting of every entry point: torch's thread count, in its own process and in
the processes DDP starts."""

from __future__ import annotations

import os

import pytest
import torch

from rnnlm.errors import UserError
from rnnlm.fast.threads import use_threads

from .conftest import CONF


@pytest.fixture
def restore_threads(monkeypatch):
    """Tests that set torch's thread count in this process give it back afterwards."""
    before = torch.get_num_threads()
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(name, os.environ.get(name, ""))  # restored by monkeypatch
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("value", [0, -1, 2.5, "auto", True])
def test_a_bad_thread_count_is_refused(value):
    with pytest.raises(UserError, match=f"threads={value!r} is not allowed: it must be an integer"):
        use_threads(value)


@pytest.mark.parametrize("task", ["eval", "generate"])
def test_every_entry_point_sets_torch_and_the_environment(task, trained_run, restore_threads):
    from hydra import compose, initialize_config_dir

    torch.set_num_threads(2)
    use_threads(None)  # torch's default: left as it is
    assert torch.get_num_threads() == 2
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name=task, overrides=[f"ckpt_path={trained_run[1]}", "threads=1"])
    if task == "eval":
        from rnnlm.evaluate import evaluate

        evaluate(cfg)
    else:
        from rnnlm.generate import generate

        generate(cfg)
    assert torch.get_num_threads() == 1 and os.environ["OMP_NUM_THREADS"] == "1"

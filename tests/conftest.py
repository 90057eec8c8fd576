"""Shared fixtures: a tiny corpus made by the test, the real book when present, Hydra compose."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

# One CPU thread in every test and in the runs the tests start: the tiny models gain nothing
# from a second, and beside a second test process (-n auto) spinning threads wait on each other.
os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

# Sentences written for the tests (the book itself is only ever read from a path): 344
# characters once cleaned, the same 24 symbols as the book's first paragraph.
TINY_TEXT = (
    "A lighthouse keeper kept a log of every ship that passed his rock by night. He wrote "
    "down the colour of each lamp, the hour, and how the winds were blowing; by the fifth "
    "winter his tables filled seven books. Visitors who climbed the stairs were shown the "
    "oldest of them, and most went away baffled, for the numbers made a pattern nobody "
    "could explain.\n"
) * 4


# The extras of pyproject.toml, each with a module that tells whether it is installed.
EXTRAS = {
    "optuna": "hydra_plugins.hydra_optuna_sweeper",
    "slurm": "hydra_plugins.hydra_submitit_launcher",
    "compressors": ("pyppmd", "zpaq"),
    "board": "playwright",
}


def extra_installed(name: str) -> bool:
    import importlib.util

    modules = EXTRAS[name] if isinstance(EXTRAS[name], tuple) else (EXTRAS[name],)
    try:
        return all(importlib.util.find_spec(module) is not None for module in modules)
    except ModuleNotFoundError:  # a missing parent package (hydra_plugins)
        return False


def pytest_runtest_setup(item: pytest.Item) -> None:
    """`@pytest.mark.extra("optuna")`: the test needs that extra; without it, it skips and
    says how to install it (`.ci/run` runs these again with every extra: `-m extra`)."""
    for marker in item.iter_markers("extra"):
        for name in marker.args:
            if not extra_installed(name):
                pytest.skip(f"needs the {name!r} extra: pip install -e '.[{name}]'")


def book_path() -> Path | None:
    """The real corpus: $RNNLM_TIMEMACHINE, else data/timemachine.txt (the download's cache)."""
    candidates = [os.environ.get("RNNLM_TIMEMACHINE"), ROOT / "data" / "timemachine.txt"]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


@pytest.fixture
def book() -> Path:
    path = book_path()
    if path is None:
        pytest.skip("the real timemachine.txt is not available offline")
    return path


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.txt"
    path.write_text(TINY_TEXT, encoding="utf-8")
    return path


TINY_OVERRIDES = [
    "data.batch_size=64",
    "data.num_steps=8",
    "data.num_train=600",
    "data.num_val=300",
    "model.rnn.num_hiddens=16",
    "trainer.max_epochs=3",
    "trainer.accelerator=cpu",
    "trainer.devices=1",
    "~callbacks.progress_bar",
    "~callbacks.model_summary",
    "+trainer.enable_progress_bar=false",
    "+trainer.enable_model_summary=false",
]


def compose_config(*overrides: str, name: str = "train"):
    """The real conf/<name>.yaml composed with `overrides` (Hydra's global state is cleared)."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name=name, overrides=list(overrides))


@pytest.fixture
def compose_train():
    """compose_train(*overrides) -> the real conf/train.yaml composed with `overrides`."""
    return compose_config


def sweep_args(tiny_corpus: Path, sweep: Path) -> list[str]:
    """The tiny settings, left out of the job folder names (as a user may leave out data.path).
    The model size and epochs are left to each test: they are what sweeps vary."""
    fixed = [o for o in TINY_OVERRIDES if not o.startswith(("model.rnn.", "trainer.max_epochs"))]
    keys = [o.lstrip("+~").split("=")[0] for o in fixed] + ["data.path"]
    return [
        f"data.path={tiny_corpus}",
        *fixed,
        f"hydra.sweep.dir={sweep}",
        f"hydra.job.config.override_dirname.exclude_keys=[{','.join(keys)}]",
    ]


def cli(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run one of the project's entry points (train.py, generate.py, eval.py) as a user would."""
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A finished 3-epoch tiny run: (its text, its last.ckpt)."""
    from rnnlm.train import train

    run = tmp_path_factory.mktemp("finished")
    corpus = run / "tiny.txt"
    corpus.write_text(TINY_TEXT)
    train(compose_config(f"data.path={corpus}", *TINY_OVERRIDES), run)
    return corpus, run / "checkpoints" / "last.ckpt"

"""Nothing lost: writes that cannot cut a good file short, a run folder for one live run and
nobody else's files, Ctrl-C at start-up, one line before Lightning says anything, short texts."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from rnnlm.errors import UserError

from .conftest import ROOT, TINY_OVERRIDES, cli
from .helpers import assert_one_line_error, said

FAST = [o for o in TINY_OVERRIDES if not o.startswith("trainer.max_epochs")]


def only_line(out: subprocess.CompletedProcess, *fragments: str) -> None:
    """The error line alone (and Hydra's hint): no Lightning line, no warning, nothing on
    stdout."""
    assert_one_line_error(out, *fragments)
    assert len(said(out)) == 1, out.stderr


def test_a_failed_write_leaves_the_old_file_whole(tmp_path):
    from rnnlm.files import write_bytes, write_file

    target = tmp_path / "results.json"
    write_bytes(target, b"the good one\n")
    assert target.stat().st_mode & 0o777 == 0o666 & ~current_umask()  # as open() would

    def disk_full(f):
        f.write(b"half of the new one")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(UserError) as err:
        write_file(target, disk_full, kept=f": {target} is kept")
    assert str(err.value) == (
        f"writing {target} failed (No space left on device): {target} is kept"
    )
    assert target.read_bytes() == b"the good one\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]  # no temporary file


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_full_disk_keeps_the_last_good_checkpoint(
    trained_run, compose_train, tmp_path, monkeypatch
):
    """The checkpoint write fails at the disk (faked at fsync, after the bytes went to the
    temporary file): the run ends with one error naming the file and the checkpoint kept, and
    last.ckpt still loads and equals the one before."""
    import shutil

    import rnnlm.files
    from rnnlm.train import train

    corpus, last = trained_run
    run = tmp_path / "run"
    shutil.copytree(last.parents[1], run)
    kept = run / "checkpoints" / "last.ckpt"
    before = kept.read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    killed = run / "checkpoints" / ".last.ckpt.x1y2.tmp"  # what a kill -9 mid-write leaves
    killed.write_bytes(b"half")
    monkeypatch.setattr(rnnlm.files.os, "fsync", full)
    cfg = compose_train(f"data.path={corpus}", *FAST, "trainer.max_epochs=5", "ckpt_path=last")
    with pytest.raises(UserError) as err:
        train(cfg, run)
    message = str(err.value)
    assert (
        message.startswith(f"writing {run}/checkpoints/") and "No space left on device" in message
    )
    assert "the last good checkpoint" in message and str(kept) in message
    assert kept.read_bytes() == before
    assert torch.load(kept, weights_only=True)["epoch"] == 2
    assert not [p for p in (run / "checkpoints").iterdir() if p.suffix == ".tmp"]


def hold_in_another_process(folder: Path) -> subprocess.Popen:
    code = (
        "import sys, time; from pathlib import Path; from rnnlm.ops.folders import hold_lock; "
        "Path(sys.argv[1]).mkdir(parents=True); hold_lock(Path(sys.argv[1])); "
        "print('held', flush=True); time.sleep(120)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


@pytest.mark.slow
def test_a_second_train_py_into_a_live_runs_folder_is_refused(tmp_path, tiny_corpus):
    from rnnlm.ops.folders import hold_lock

    folder = tmp_path / "run"
    holder = hold_in_another_process(folder)
    try:
        out = cli(
            "train.py", f"data.path={tiny_corpus}", *FAST, f"hydra.run.dir={folder}", cwd=tmp_path
        )
    finally:
        holder.kill()  # killed, not ended: the kernel releases its lock
        holder.wait()
    only_line(out, "is in use by a live run: wait for it to end, or choose another hydra.run.dir")
    assert list(folder.iterdir()) == []  # nothing written, no lock file
    os.close(hold_lock(folder))  # free again once the holder is gone


@pytest.mark.slow
def test_a_folder_of_someone_elses_files_is_refused_and_kept(tmp_path, tiny_corpus):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "results.json").write_text('{"mine": true}')
    (folder / "train.log").write_text("my notes")
    out = cli(
        "train.py", f"data.path={tiny_corpus}", *FAST, f"hydra.run.dir={folder}", cwd=tmp_path
    )
    only_line(out, "holds files a run would overwrite", "(results.json, train.log)")
    assert sorted(p.name for p in folder.iterdir()) == ["results.json", "train.log"]
    assert (folder / "results.json").read_text() == '{"mine": true}'
    assert (folder / "train.log").read_text() == "my notes"


@pytest.mark.slow
@pytest.mark.parametrize("when", ["in the imports", "once hydra made the run folder"])
def test_ctrl_c_at_start_up_is_one_line_and_leaves_no_folder(tmp_path, tiny_corpus, when):
    run = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), f"data.path={tiny_corpus}", *FAST,
         "trainer.max_epochs=50", f"hydra.run.dir={tmp_path}/outputs/run"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    if when == "in the imports":
        time.sleep(1.5)
    else:  # the task is about to build the data and the model: training has not started
        composed = tmp_path / "outputs" / "run" / ".hydra" / "config.yaml"
        deadline = time.monotonic() + 60
        while not composed.is_file() and time.monotonic() < deadline:
            time.sleep(0.01)
    run.send_signal(signal.SIGINT)
    out, err = run.communicate(timeout=120)
    assert run.returncode == 1, err[-2000:]
    assert said(subprocess.CompletedProcess([], 1, out, err)) == ["stopped by SIGINT (Ctrl-C)"]
    assert "Traceback" not in err
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow
def test_resume_mistakes_come_before_any_lightning_line(trained_run, tmp_path):
    corpus, last = trained_run
    base = [f"data.path={corpus}", *FAST, f"hydra.run.dir={tmp_path}/again"]
    out = cli("train.py", *base, "trainer.max_epochs=3", f"ckpt_path={last}", cwd=tmp_path)
    only_line(out, "has already trained 3 epochs")
    out = cli("train.py", *base, "trainer.max_epochs=5", "model.rnn.num_hiddens=8",
              f"ckpt_path={last}", cwd=tmp_path)  # fmt: skip
    only_line(out, "holds another model or text")
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(last.read_bytes()[:5000])
    out = cli("train.py", *base, f"ckpt_path={truncated}", cwd=tmp_path)
    only_line(out, "is not a checkpoint written by rnnlm's train.py")
    assert not (tmp_path / "again").exists()


def test_lightnings_info_lines_are_quiet_unless_verbose(
    compose_train, tiny_corpus, tmp_path, caplog
):
    import logging

    from rnnlm.train import train

    for verbose in (False, True):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="pytorch_lightning"):
            cfg = compose_train(f"data.path={tiny_corpus}", *FAST, "trainer.max_epochs=1",
                                f"verbose={str(verbose).lower()}")  # fmt: skip
            train(cfg, tmp_path / str(verbose))
        said = [r.getMessage() for r in caplog.records if r.name.startswith("pytorch_lightning")]
        assert any(m.startswith("GPU available") for m in said) == verbose, said


def test_a_short_text_trains_on_fractions_with_one_line(compose_train, tmp_path, capsys):
    from rnnlm.train import train

    from .conftest import TINY_TEXT

    text = tmp_path / "short.txt"
    text.write_text(TINY_TEXT * 4)  # 5.5 KB: the book's 10,000 + 5,000 windows do not fit
    sizes = ("data.num_train", "data.num_val", "data.batch_size")
    fast = [o for o in FAST if not o.startswith(sizes)]
    assert (
        train(compose_train(f"data.path={text}", *fast, "trainer.max_epochs=1"), tmp_path / "r") > 1
    )
    said = [line for line in capsys.readouterr().out.splitlines() if "do not fit" in line]
    assert len(said) == 1
    available = int(said[0].split(" windows do not fit the ")[1].split()[0])
    assert 5000 < available < 15000
    assert said[0] == (
        f"data.num_train=10000 + data.num_val=5000 windows do not fit the {available} windows of "
        f"{text}: training on data.num_train=0.8 data.num_val=0.1 of them instead"
    )
    # Counts the user typed, or mixed with a fraction, that do not fit are refused.
    for typed in ("data.num_train=0.9", "data.num_train=10000000"):
        with pytest.raises(UserError, match="fractions of the text fit any length"):
            train(compose_train(f"data.path={text}", *fast, typed), tmp_path / "no")


def test_a_full_disk_is_refused_before_hydra_writes_anything(tmp_path, monkeypatch):
    import collections

    from omegaconf import OmegaConf

    import rnnlm.ops.folders as folders

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(folders.shutil, "disk_usage", lambda path: usage(10, 10, 0))
    run = tmp_path / "run"
    config = OmegaConf.create({"hydra": {"run": {"dir": str(run)}, "output_subdir": ".hydra"}})
    with pytest.raises(UserError, match=f"hydra.run.dir='{run}': the disk is full .0 bytes free"):
        folders.RunFolder().hold(config)
    assert not run.exists()

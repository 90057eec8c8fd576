"""The run folder (a Hydra callback, conf/hydra/default.yaml): Hydra makes `hydra.run.dir` if it
is missing and writes into it if it exists, so this records what was there before, refuses a
folder that cannot hold the run, holds it for one live run, and takes back what a refused run
made."""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from pathlib import Path

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from rnnlm.errors import UserError, user_error
from rnnlm.files import flatten

CARRY_ON_KEYS = ("ckpt_path", "trainer.max_epochs", "trainer.max_time")  # a resume may change
MIN_FREE = 1 << 20  # bytes: below this Hydra's and TensorBoard's writers fail with tracebacks


class RunFolder(Callback):
    """Hydra turns what a callback raises into a warning: a refused folder exits here, with
    its one line."""

    def __init__(self) -> None:
        self.folder: Path | None = None
        self.made: Path | None = None  # the highest folder this run created
        self.before: set[str] = set()  # what the folder held before
        self.lock: int | None = None

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        try:
            self.hold(config)
        except UserError as err:
            raise SystemExit(str(err)) from None

    def hold(self, config: DictConfig) -> None:
        if any(os.environ.get(v, "0") != "0" for v in ("RANK", "LOCAL_RANK", "NODE_RANK")):
            return  # a DDP rank that Lightning started into rank 0's folder
        folder, key = Path(config.hydra.run.dir).absolute(), "hydra.run.dir"
        check_writable(key, folder)
        missing = [p for p in (folder, *folder.parents) if not p.exists()]
        self.folder, self.made = folder, missing[-1] if missing else None
        self.before = set(os.listdir(folder)) if folder.is_dir() else set()
        check_same_run(config, folder, self.before)
        folder.mkdir(parents=True, exist_ok=True)
        self.lock = hold_lock(folder)

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        try:
            check_writable("hydra.sweep.dir", Path(config.hydra.sweep.dir).absolute())
        except UserError as err:
            raise SystemExit(str(err)) from None

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs) -> None:
        """A single run refused by a `UserError` before it wrote anything of its own: remove
        what Hydra made for it (its config, the folders)."""
        refused = job_return.status == JobStatus.FAILED and user_error(job_return._return_value)
        if self.folder is None or not refused or not self.folder.is_dir():
            return
        new = set(os.listdir(self.folder)) - self.before
        if not new <= {str(config.hydra.output_subdir)}:
            return  # the run wrote events or checkpoints: they stay
        if self.lock is not None:
            os.close(self.lock)
        for name in new:
            shutil.rmtree(self.folder / name)
        if self.made is not None and not any(p.is_file() for p in self.made.rglob("*")):
            shutil.rmtree(self.made)


def check_writable(key: str, folder: Path) -> None:
    """A real attempt (permission bits say nothing for root, or on /proc), and room to write."""
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    try:
        os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".rnnlm-write-test-"))
    except OSError:
        raise UserError(
            f"{key}='{folder}' cannot be written ({existing} is not a writable folder): choose "
            "another output folder"
        ) from None
    free = shutil.disk_usage(existing).free
    if free < MIN_FREE:
        raise UserError(
            f"{key}='{folder}': the disk is full ({free} bytes free in {existing}): free some "
            "space, or choose another output folder"
        )


def check_same_run(config: DictConfig, folder: Path, entries: set[str]) -> None:
    """A folder that holds files may only be this run's own (a resume): its saved config may
    differ in `CARRY_ON_KEYS` alone. Anything else would be overwritten or merged."""
    saved = folder / str(config.hydra.output_subdir) / "config.yaml"
    if not entries - {str(config.hydra.output_subdir)}:
        return
    if config.hydra.output_subdir is None or not saved.is_file():
        raise UserError(
            f"hydra.run.dir='{folder}' holds files a run would overwrite and that no run of "
            f"rnnlm wrote there ({', '.join(sorted(entries)[:4])}): choose another hydra.run.dir"
        )
    now = OmegaConf.to_container(config, resolve=False)
    now.pop("hydra", None)
    before, now = flatten(OmegaConf.to_container(OmegaConf.load(saved))), flatten(now)
    differ = [
        k
        for k in sorted(before.keys() | now.keys())
        if before.get(k) != now.get(k) and not k.startswith(CARRY_ON_KEYS)
    ]
    if differ:
        shown = ", ".join(f"{k}: {before.get(k)!r} there, {now.get(k)!r} now" for k in differ[:3])
        raise UserError(
            f"hydra.run.dir='{folder}' holds another run ({len(differ)} settings differ: "
            f"{shown}): choose another hydra.run.dir, or carry that run on with its own "
            "settings and ckpt_path=last"
        )


def hold_lock(folder: Path) -> int:
    """Lock `folder` itself for this process's life (the kernel drops the lock with the
    process, and no file is left), or refuse: another live run holds it."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise UserError(
            f"hydra.run.dir='{folder}' is in use by a live run: wait for it to end, or choose "
            "another hydra.run.dir"
        ) from None
    return fd

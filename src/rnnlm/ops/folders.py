"""Run folders: what a run found of its folder before Hydra made or used it (so a refused run
removes only what it made), the checks of `hydra.run.dir` before a task, and the lock that
keeps one live run per folder."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import OmegaConf

from rnnlm.ops.files import flatten

try:
    import fcntl
except ImportError:  # not POSIX: runs hold no lock
    fcntl = None

LOCK = ".rnnlm-run.lock"  # held by the live run of a folder (flock: it dies with its process)


class RunFolder:
    """What this process found of its run folder before Hydra made or used it: Hydra creates
    `hydra.run.dir` when it is missing and writes into it when it exists, so only a record made
    before (by `CheckOutputDir`) can tell what a refused run may remove."""

    def __init__(self, folder: str | Path, hydra_subdir: str | None = None) -> None:
        self.folder = Path(folder).absolute()
        self.hydra_subdir = hydra_subdir
        # The highest of the folder and its parents that is missing: what Hydra will create.
        missing = [p for p in (self.folder, *self.folder.parents) if not p.exists()]
        self.created = missing[-1] if missing else None
        self.entries = set() if missing else {p.name for p in self.folder.iterdir()}

    def discard(self) -> bool:
        """Remove what was made for a run that never started: Hydra's composed config and log
        and the lock, when they were not there before; then the folders made for the run,
        when nothing else is in them. Nothing that was there before, and nothing once the
        run wrote anything of its own (a checkpoint, events). True if the folder is gone."""
        if not self.folder.is_dir():
            return True
        new = [e for e in self.folder.iterdir() if e.name not in self.entries]
        if not all(self.made_before_start(e) for e in new):
            return False
        for entry in new:
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        if self.created is None:
            return False
        for folder in (self.folder, *self.folder.parents):
            if any(folder.iterdir()):
                return False
            folder.rmdir()
            if folder == self.created:
                return True
        return True

    def made_before_start(self, entry: Path) -> bool:
        hydras = entry.name in (self.hydra_subdir, LOCK)
        return hydras or (entry.is_file() and entry.suffix == ".log")


_run_folder: RunFolder | None = None  # recorded by CheckOutputDir before Hydra runs the task
_lock = None  # the open lock file of this process's run folder


def run_folder() -> Path | None:
    """The run folder `CheckOutputDir` recorded, if any."""
    return None if _run_folder is None else _run_folder.folder


def discard_unstarted_run() -> bool:
    """A run refused before it started: remove what was made for it (`RunFolder.discard`)."""
    return _run_folder is None or _run_folder.discard()


class CheckOutputDir(Callback):
    """Hydra callback: refuse an output folder that cannot be created or written, that holds
    another run or files a run would overwrite, or that a live run holds, in one line, before
    Hydra makes or writes anything; record what the run folder held before (`RunFolder`), so
    that a refused run removes only what it made; then hold the folder's lock."""

    def on_run_start(self, config, **kwargs) -> None:
        global _run_folder
        self.check("hydra.run.dir", config.hydra.run.dir)
        self.check_same_run(config)
        self.check_not_foreign(config)
        _run_folder = RunFolder(config.hydra.run.dir, config.hydra.output_subdir)
        if first_process():  # DDP's other ranks re-run train.py into the same folder
            hold_lock(Path(config.hydra.run.dir))

    def on_multirun_start(self, config, **kwargs) -> None:
        self.check("hydra.sweep.dir", config.hydra.sweep.dir)

    @staticmethod
    def check_not_foreign(config) -> None:
        """A folder that holds files a run writes (results.json, the log, checkpoints, ...)
        but no run of this project (its lock or its composed config) is someone else's: a
        run there would overwrite or append to them."""
        folder, subdir = Path(config.hydra.run.dir), config.hydra.output_subdir
        if not folder.is_dir() or (folder / LOCK).exists():
            return
        if subdir is not None and (folder / subdir / "config.yaml").is_file():
            return
        names = ["results.json", f"{config.hydra.job.name}.log", "checkpoints", "hparams.yaml"]
        names += [str(subdir)] if subdir is not None else []
        found = [n for n in names if (folder / n).exists()]
        found += sorted(p.name for p in folder.glob("events.out.tfevents.*"))[:1]
        if found:
            print(
                f"error: hydra.run.dir={str(folder)!r} holds files a run would overwrite and "
                f"that no run of rnnlm wrote there ({', '.join(found)}): choose another "
                "hydra.run.dir",
                file=sys.stderr,
            )
            raise SystemExit(2)

    @staticmethod
    def check(key: str, folder: str) -> None:
        path = Path(folder).absolute()
        existing = next(p for p in (path, *path.parents) if p.exists())
        try:  # a real attempt: permission bits say nothing for root, or on /proc
            os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".rnnlm-write-test-"))
        except OSError:
            print(
                f"error: {key}={folder!r} cannot be written ({existing} is not a writable "
                "folder): choose another output folder",
                file=sys.stderr,
            )
            raise SystemExit(2) from None

    # What may change when a run carries on in its own folder.
    CARRY_ON_KEYS = ("ckpt_path", "trainer.max_epochs", "trainer.max_time")

    @classmethod
    def check_same_run(cls, config) -> None:
        """Refuse a run folder that holds another run (its checkpoints or events, and a
        config that differs beyond the keys a run carries on with): the two would be merged,
        checkpoints side by side, events interleaved, the config overwritten."""
        folder = Path(config.hydra.run.dir)
        subdir = config.hydra.output_subdir
        saved = folder / str(subdir) / "config.yaml"
        ran = any(folder.glob("checkpoints/*.ckpt")) or any(folder.glob("events.out.tfevents.*"))
        if subdir is None or not saved.is_file() or not ran:
            return
        now = OmegaConf.to_container(config, resolve=False)
        now.pop("hydra", None)
        before, now = flatten(OmegaConf.to_container(OmegaConf.load(saved))), flatten(now)
        differ = sorted(
            key
            for key in before.keys() | now.keys()
            if before.get(key) != now.get(key) and not key.startswith(cls.CARRY_ON_KEYS)
        )
        if differ:
            shown = ", ".join(
                f"{k}: {before.get(k)!r} there, {now.get(k)!r} now" for k in differ[:3]
            )
            print(
                f"error: hydra.run.dir={str(folder)!r} holds another run ({len(differ)} settings "
                f"differ: {shown}): choose another hydra.run.dir, or carry that run on with "
                "its own settings and ckpt_path=last",
                file=sys.stderr,
            )
            raise SystemExit(2)


def first_process() -> bool:
    """Whether this is the process a run starts in, not a rank that a launcher started."""
    return all(os.environ.get(v, "0") == "0" for v in ("RANK", "LOCAL_RANK", "NODE_RANK"))


def hold_lock(folder: Path) -> None:
    """Hold `folder`'s lock for this process's life, or refuse the run in one line naming the
    live process that holds it. The lock is released by the kernel when its process ends, so
    a killed run does not block its own resume."""
    global _lock
    if fcntl is None:  # not POSIX: no lock
        return
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        print(
            f"error: hydra.run.dir={str(folder)!r} is in use by a live run (process {holder}): "
            "wait for it to end, or choose another hydra.run.dir",
            file=sys.stderr,
        )
        raise SystemExit(2) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _lock = fd

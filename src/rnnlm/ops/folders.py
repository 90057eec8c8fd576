"""Run folders: what a run found of its folder before Hydra made or used it (a refused run removes
only what it made), the checks of `hydra.run.dir`, and the lock of a folder's live run."""

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
CARRY_ON_KEYS = ("ckpt_path", "trainer.max_epochs", "trainer.max_time")  # a resume may change


def refuse(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


class RunFolder:
    """What this process found of its run folder before Hydra ran: Hydra creates a missing
    `hydra.run.dir` and writes into an existing one, so only this record tells what is ours."""

    def __init__(self, folder: str | Path, hydra_subdir: str | None = None) -> None:
        self.folder = Path(folder).absolute()
        self.hydra_subdir = hydra_subdir
        missing = [p for p in (self.folder, *self.folder.parents) if not p.exists()]
        self.created = missing[-1] if missing else None  # the highest folder Hydra will create
        self.entries = set() if missing else {p.name for p in self.folder.iterdir()}

    def discard(self) -> bool:
        """Remove what was made for a run that never started (Hydra's config and log, the lock),
        then the folders made for it if empty; nothing once the run wrote anything of its own.
        True if the folder is gone."""
        if not self.folder.is_dir():
            return True
        new = [e for e in self.folder.iterdir() if e.name not in self.entries]
        made_before_start = [
            e.name in (self.hydra_subdir, LOCK) or (e.is_file() and e.suffix == ".log") for e in new
        ]
        if not all(made_before_start):
            return False
        for entry in new:
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        if self.created is None:  # the folder was there before: it stays
            return False
        for folder in (self.folder, *self.folder.parents):
            if any(folder.iterdir()):
                return False
            folder.rmdir()
            if folder == self.created:
                break
        return True


_run_folder: RunFolder | None = None  # recorded by CheckOutputDir before Hydra runs the task
_lock = None  # the open lock file of this process's run folder


def run_folder() -> Path | None:
    return None if _run_folder is None else _run_folder.folder


def discard_unstarted_run() -> bool:
    """A run refused before it started: remove what was made for it (`RunFolder.discard`)."""
    return _run_folder is None or _run_folder.discard()


class CheckOutputDir(Callback):
    """Hydra callback: refuse, in one line, an output folder that cannot be written, holds
    another run or someone else's files, or is held by a live run; record what the folder held
    (`RunFolder`), then hold its lock."""

    def on_run_start(self, config, **kwargs) -> None:
        global _run_folder
        folder, subdir = Path(config.hydra.run.dir), config.hydra.output_subdir
        check_writable("hydra.run.dir", config.hydra.run.dir)
        check_same_run(config, folder, subdir)
        check_not_foreign(folder, subdir, config.hydra.job.name)
        _run_folder = RunFolder(folder, subdir)
        if first_process():  # DDP's other ranks re-run train.py into the same folder
            hold_lock(folder)

    def on_multirun_start(self, config, **kwargs) -> None:
        check_writable("hydra.sweep.dir", config.hydra.sweep.dir)


def check_writable(key: str, folder: str) -> None:
    path = Path(folder).absolute()
    existing = next(p for p in (path, *path.parents) if p.exists())
    try:  # a real attempt: permission bits say nothing for root, or on /proc
        os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".rnnlm-write-test-"))
    except OSError:
        refuse(
            f"{key}={folder!r} cannot be written ({existing} is not a writable folder): choose "
            "another output folder"
        )


def check_not_foreign(folder: Path, subdir: str | None, job: str) -> None:
    """Files a run writes (results.json, the log, checkpoints...) with no run of ours beside them
    (its lock or config) are someone else's: a run would overwrite or append to them."""
    if not folder.is_dir() or (folder / LOCK).exists():
        return
    if subdir is not None and (folder / subdir / "config.yaml").is_file():
        return
    names = ["results.json", f"{job}.log", "checkpoints", "hparams.yaml"]
    names += [subdir] if subdir is not None else []
    found = [n for n in names if (folder / n).exists()]
    found += sorted(p.name for p in folder.glob("events.out.tfevents.*"))[:1]
    if found:
        refuse(
            f"hydra.run.dir={str(folder)!r} holds files a run would overwrite and that no run "
            f"of rnnlm wrote there ({', '.join(found)}): choose another hydra.run.dir"
        )


def check_same_run(config, folder: Path, subdir: str | None) -> None:
    """A folder with another run's checkpoints or events, whose config differs beyond
    `CARRY_ON_KEYS`, is refused: the two runs would be merged."""
    saved = folder / str(subdir) / "config.yaml"
    ran = any(folder.glob("checkpoints/*.ckpt")) or any(folder.glob("events.out.tfevents.*"))
    if subdir is None or not saved.is_file() or not ran:
        return
    now = OmegaConf.to_container(config, resolve=False)
    now.pop("hydra", None)
    before, now = flatten(OmegaConf.to_container(OmegaConf.load(saved))), flatten(now)
    differ = sorted(
        k
        for k in before.keys() | now.keys()
        if before.get(k) != now.get(k) and not k.startswith(CARRY_ON_KEYS)
    )
    if differ:
        shown = ", ".join(f"{k}: {before.get(k)!r} there, {now.get(k)!r} now" for k in differ[:3])
        refuse(
            f"hydra.run.dir={str(folder)!r} holds another run ({len(differ)} settings differ: "
            f"{shown}): choose another hydra.run.dir, or carry that run on with its own "
            "settings and ckpt_path=last"
        )


def first_process() -> bool:
    """Whether this is the process a run starts in, not a rank that a launcher started."""
    return all(os.environ.get(v, "0") == "0" for v in ("RANK", "LOCAL_RANK", "NODE_RANK"))


def hold_lock(folder: Path) -> None:
    """Hold `folder`'s lock for this process's life (the kernel drops it with the process), or
    refuse the run naming the live process that holds it."""
    global _lock
    if fcntl is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        refuse(
            f"hydra.run.dir={str(folder)!r} is in use by a live run (process {holder}): wait "
            "for it to end, or choose another hydra.run.dir"
        )
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _lock = fd

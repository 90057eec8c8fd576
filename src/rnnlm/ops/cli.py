"""The CLI layer: what turns a `UserError` into `error: <message>` and exit code 2, and the
Hydra callbacks and checks that run before a task.

Every entry point (train.py, eval.py, generate.py) wraps its task in `report_user_errors`;
`HYDRA_FULL_ERROR=1` shows the traceback instead.
"""

from __future__ import annotations

import difflib
import functools
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from hydra.errors import CompactHydraException
from hydra.experimental.callback import Callback

from rnnlm.errors import UserError, find_user_error, flatten

T = TypeVar("T")


class FailedJob(UserError, CompactHydraException):
    """A `UserError` in a job of a multirun: the sweep records the job as failed and goes on;
    at the end Hydra prints the job's overrides and this message, without a traceback."""


def in_multirun() -> bool:
    """Whether this process runs a job of a Hydra multirun (-m)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def report_user_errors(fn: Callable[..., T]) -> Callable[..., T]:
    """Decorate a CLI task: a `UserError` becomes `error: <message>` and exit code 2 (in a
    multirun, the job is marked failed and the sweep report shows it)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            user_error = find_user_error(err) or missing_value(err)
            if user_error is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            if in_multirun():  # let Hydra record a failed job; the sweep goes on
                raise FailedJob(str(user_error)) from None
            print(f"error: {user_error}", file=sys.stderr)
            discard_unstarted_run()
            raise SystemExit(2) from None

    return wrapper


def require_given(cfg) -> None:
    """Raise a `UserError` for the first mandatory key (`???` in the config) left out."""
    from omegaconf import OmegaConf

    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise required(missing[0])


def required(key: str) -> UserError:
    return UserError(f"{key} is required: add {key}=... to the command line")


def missing_value(err: Exception) -> UserError | None:
    """A mandatory key (`???` in the config, e.g. eval.py's ckpt_path) left out."""
    from omegaconf.errors import MissingMandatoryValue

    if not isinstance(err, MissingMandatoryValue):
        return None
    return required(err.full_key)


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


def discard_unstarted_run() -> bool:
    """A run refused before it started: remove what was made for it (`RunFolder.discard`)."""
    return _run_folder is None or _run_folder.discard()


def run_entry_point(main: Callable[[], object], when: str = "") -> None:
    """Run an entry point's Hydra main. Until the task hands SIGINT back to Python (train.py
    when training starts: Lightning's loops stop cleanly on Ctrl-C), Ctrl-C ends the process
    at once with one line and no run folder: a KeyboardInterrupt raised in the middle of an
    import or of Hydra's start-up would end in a traceback of whatever it cut short."""

    def stop(signum, frame) -> None:
        gone = discard_unstarted_run()
        kept = "nothing was kept" if gone else f"the run folder {_run_folder.folder} is kept"
        print(f"error: stopped by SIGINT (Ctrl-C){when}; {kept}", file=sys.stderr, flush=True)
        os._exit(130)

    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not ignored (cmd &)
        signal.signal(signal.SIGINT, stop)
    main()


NULLS = ("null", "none", "~")


def check_command_line(argv: list[str], conf_dir: Path, config_name: str) -> None:
    """The mistakes Hydra reports in several lines or with a traceback (exit code 1) while it
    composes the config, before any task code runs: an unknown option of a config group, a
    group set to null, a key the config does not have. Said in one line instead, exit code 2,
    before Hydra makes a run folder. Anything else is left to Hydra."""
    if any(arg.startswith("-") and arg not in ("-m", "--multirun") for arg in argv):
        return  # --help, --cfg, --info, ...: Hydra's own
    overrides = [arg for arg in argv if not arg.startswith("-")]
    try:
        problem = first_problem(overrides, conf_dir, config_name)
    except Exception:  # what this check cannot read, Hydra reports itself
        return
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        raise SystemExit(2)


def first_problem(overrides: list[str], conf_dir: Path, config_name: str) -> str | None:
    """The first override that names an option or a key the config does not have."""
    groups, keys = [], []
    for arg in overrides:
        key, sep, value = arg.partition("=")
        name = key.lstrip("+~")
        if name.split("/")[0].split(".")[0] == "hydra" or (not sep and not key.startswith("~")):
            continue
        folder = conf_dir / name
        if folder.is_dir() and sep:
            options = sorted(f.stem for f in folder.glob("*.yaml"))
            for choice in [] if "(" in value else value.split(","):
                if choice.strip().lower() in NULLS and choice not in options:
                    return (
                        f"{arg} is not allowed: {name} takes one of {options}; to turn {name} "
                        f"off write ~{name}"
                    )
                if choice not in options:
                    return f"{name}={choice} is not allowed: {name} takes one of {options}"
            groups.append(f"{key}={value.split(',')[0]}" if "(" not in value else arg)
        elif not key.startswith("+"):
            keys.append(name)
    if not keys:
        return None
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
        cfg = compose(config_name, overrides=groups)
    known = set(flatten(OmegaConf.to_container(cfg, resolve=False)))
    known |= {".".join(k.split(".")[:n]) for k in known for n in range(1, k.count(".") + 1)}
    for key in keys:
        if key not in known:
            level = sorted(k for k in known if k.count(".") == key.count("."))
            near = difflib.get_close_matches(key, level, n=2, cutoff=0.8)
            hint = f": did you mean {' or '.join(near)}?" if near else ""
            return (
                f"{key} is not a key of the {config_name} config{hint} (python {config_name}.py "
                "--cfg job prints every key)"
            )
    return None


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
        from omegaconf import OmegaConf

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
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
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


def quote_text_values(argv: list[str], keys: tuple[str, ...] = ("prefix",)) -> list[str]:
    """`argv` with each `key=VALUE` of `keys` that Hydra's override grammar cannot read (a
    text with `!`, `(`, `:` ...) quoted so that it reads back as exactly VALUE: a prefix is
    always text, so `prefix="It Has!"` needs no second layer of quotes. Arguments Hydra reads
    already, and any whose quoted form would not read back the same, are left as they are."""
    import re

    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    quoted = []
    for arg in argv:
        key, eq, value = arg.partition("=")
        if eq and key in keys:
            try:
                parser.parse_override(arg)
            except Exception:
                # Hydra's quoted strings: \' is a quote; backslashes before a quote or at the
                # end are doubled.
                body = re.sub(r"(\\+)(?='|$)", lambda m: m.group(1) * 2, value)
                candidate = f"{key}='{body.replace(chr(39), chr(92) + chr(39))}'"
                try:
                    if parser.parse_override(candidate).value() == value:
                        arg = candidate
                except Exception:
                    pass
        quoted.append(arg)
    return quoted

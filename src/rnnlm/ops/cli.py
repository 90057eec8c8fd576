"""The CLI layer: what turns a `UserError` into `error: <message>` and exit code 2, and the
Hydra callbacks and checks that run before a task.

Every entry point (train.py, eval.py, generate.py) wraps its task in `report_user_errors`;
`HYDRA_FULL_ERROR=1` shows the traceback instead.
"""

from __future__ import annotations

import difflib
import functools
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from hydra.errors import CompactHydraException

from rnnlm.errors import UserError
from rnnlm.ops import folders
from rnnlm.ops.files import flatten

T = TypeVar("T")


class FailedJob(UserError, CompactHydraException):
    """A `UserError` in a job of a multirun: the sweep records the job as failed and goes on;
    at the end Hydra prints the job's overrides and this message, without a traceback."""


def find_user_error(exc: BaseException | None) -> UserError | None:
    """The `UserError` behind `exc`, also when a library wrapped it (Hydra's instantiate)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, UserError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def unwrap_user_errors(fn: Callable[..., T]) -> Callable[..., T]:
    """Re-raise a wrapped `UserError` as itself (for API callers and the CLI alike)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        except UserError:
            raise
        except Exception as err:
            user_error = find_user_error(err)
            if user_error is None:
                raise
            raise user_error from None

    return wrapper


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
            folders.discard_unstarted_run()
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


def run_entry_point(main: Callable[[], object], when: str = "") -> None:
    """Run an entry point's Hydra main. Until the task hands SIGINT back to Python (train.py
    when training starts: Lightning's loops stop cleanly on Ctrl-C), Ctrl-C ends the process
    at once with one line and no run folder: a KeyboardInterrupt raised in the middle of an
    import or of Hydra's start-up would end in a traceback of whatever it cut short."""

    def stop(signum, frame) -> None:
        gone = folders.discard_unstarted_run()
        kept = "nothing was kept" if gone else f"the run folder {folders.run_folder()} is kept"
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
    return unknown_key(keys, groups, conf_dir, config_name) if keys else None


def unknown_key(keys: list[str], groups: list[str], conf_dir: Path, config_name: str):
    """The first of `keys` that the config composed with `groups` does not have, in a line."""
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

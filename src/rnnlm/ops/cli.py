"""The command line: a `UserError` as `error: <message>` and exit 2 (`HYDRA_FULL_ERROR=1` shows
the traceback), Ctrl-C at start-up, and the overrides Hydra would report in many lines."""

from __future__ import annotations

import difflib
import functools
import os
import re
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
NULLS = ("null", "none", "~")


class FailedJob(UserError, CompactHydraException):
    """A multirun job's `UserError`: Hydra marks the job failed, prints it without traceback."""


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
        except Exception as err:
            user_error = find_user_error(err)
            if user_error is None or user_error is err:
                raise
            raise user_error from None

    return wrapper


def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def report_user_errors(fn: Callable[..., T]) -> Callable[..., T]:
    """Decorate a CLI task: a `UserError` becomes one line and exit 2 (a failed job in a sweep)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            user_error = find_user_error(err)
            if user_error is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            if in_multirun():  # let Hydra record a failed job; the sweep goes on
                raise FailedJob(str(user_error)) from None
            print(f"error: {user_error}", file=sys.stderr)
            folders.discard_unstarted_run()
            raise SystemExit(2) from None

    return wrapper


def require_given(cfg) -> None:
    """A `UserError` for the first mandatory key (`???` in the config) left out."""
    from omegaconf import OmegaConf

    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise UserError(f"{missing[0]} is required: add {missing[0]}=... to the command line")


def run_entry_point(main: Callable[[], object], when: str = "") -> None:
    """Run a Hydra main. Until the task hands SIGINT back (train.py, when training starts),
    Ctrl-C ends the process at once with one line and no run folder, not a traceback of
    whatever import or start-up step it cut short."""

    def stop(signum, frame) -> None:
        gone = folders.discard_unstarted_run()
        kept = "nothing was kept" if gone else f"the run folder {folders.run_folder()} is kept"
        print(f"error: stopped by SIGINT (Ctrl-C){when}; {kept}", file=sys.stderr, flush=True)
        os._exit(130)

    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not ignored (cmd &)
        signal.signal(signal.SIGINT, stop)
    main()


def check_command_line(argv: list[str], conf_dir: Path, config_name: str) -> None:
    """An unknown group option, a group set to null, or an unknown key: one line and exit 2
    before Hydra makes a run folder (Hydra says it in many lines, exit 1); the rest is Hydra's."""
    if any(arg.startswith("-") and arg not in ("-m", "--multirun") for arg in argv):
        return  # --help, --cfg, --info, ...: Hydra's own
    try:
        problem = first_problem([a for a in argv if not a.startswith("-")], conf_dir, config_name)
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
    key = next((k for k in keys if k not in known), None)
    if key is None:
        return None
    level = sorted(k for k in known if k.count(".") == key.count("."))
    near = difflib.get_close_matches(key, level, n=2, cutoff=0.8)
    hint = f": did you mean {' or '.join(near)}?" if near else ""
    return (
        f"{key} is not a key of the {config_name} config{hint} (python {config_name}.py "
        "--cfg job prints every key)"
    )


def quote_text_values(argv: list[str], keys: tuple[str, ...] = ("prefix",)) -> list[str]:
    """Each `key=VALUE` of `keys` that Hydra's grammar cannot read (`!`, `(`, `:` ...) quoted so
    that it reads back as exactly VALUE; any other argument as it is."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser, quoted = OverridesParser.create(), []
    for arg in argv:
        key, eq, value = arg.partition("=")
        if eq and key in keys:
            try:
                parser.parse_override(arg)
            except Exception:
                # Hydra's quoting: \' is a quote; backslashes before a quote or at the end double.
                body = re.sub(r"(\\+)(?='|$)", lambda m: m.group(1) * 2, value)
                candidate = f"{key}='{body.replace(chr(39), chr(92) + chr(39))}'"
                try:
                    if parser.parse_override(candidate).value() == value:
                        arg = candidate
                except Exception:
                    pass
        quoted.append(arg)
    return quoted

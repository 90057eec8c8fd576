"""`UserError`, a mistake a user can fix (its message names the bad value and what is allowed),
the value checks every layer uses, and `user_errors`, where a task turns a mistake into it."""

from __future__ import annotations

import errno
import functools
from collections.abc import Callable
from typing import TypeVar

from hydra.errors import CompactHydraException

T = TypeVar("T")


class UserError(CompactHydraException, ValueError):
    """Bad input: the message names the bad value and what is allowed. Hydra prints it as it is,
    without a traceback (`HYDRA_FULL_ERROR=1` shows one), and a sweep records the job failed."""


def user_errors(task: Callable[..., T]) -> Callable[..., T]:
    """Wrap a task: a `UserError` that a library wrapped (Hydra's instantiate, Lightning) raised
    as itself, and a full disk, Ctrl-C or a config value that cannot be resolved as one."""

    @functools.wraps(task)
    def wrapper(*args, **kwargs) -> T:
        try:
            return task(*args, **kwargs)
        except KeyboardInterrupt:  # Lightning handles it during fit: this is before or after
            raise UserError("stopped by SIGINT (Ctrl-C)") from None
        except Exception as err:
            found = user_error(err)
            if found is None or found is err:
                raise
            raise found from None

    return wrapper


def user_error(exc: BaseException | None) -> UserError | None:
    """The `UserError` behind `exc` or its causes, or one made from a full disk or an
    unresolvable interpolation (`prefix='${x}'`)."""
    from omegaconf.errors import InterpolationResolutionError

    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, UserError):
            return exc
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return UserError(f"the disk is full: {exc.filename or 'a file'} cannot be written")
        if isinstance(exc, InterpolationResolutionError):
            return UserError(f"{exc.full_key}: {str(exc).splitlines()[0]}")
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def require_given(cfg) -> None:
    """A `UserError` for the first mandatory key (`???` in the config) left out."""
    from omegaconf import OmegaConf

    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise UserError(f"{missing[0]} is required: add {missing[0]}=... to the command line")


RULES = {"> 0": lambda v: v > 0, ">= 0": lambda v: v >= 0, "in [0, 1)": lambda v: 0 <= v < 1}
RULES |= {"in [0, 1]": lambda v: 0 <= v <= 1, "in (0, 1]": lambda v: 0 < v <= 1}


def require_number(name: str, value: object, rule: str = "> 0", why: str = "") -> float:
    """`value` as a float, or a `UserError` unless it is a number that keeps `rule` (`RULES`)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not RULES[rule](value):
        raise UserError(f"{name}={value!r} is not allowed: it must be a number {rule}{why}")
    return float(value)


def require_count(name: str, value: object, minimum: int = 1) -> None:
    """Raise a `UserError` unless `value` is an integer >= `minimum` (sizes, counts)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserError(f"{name}={value!r} is not allowed: it must be an integer >= {minimum}")


def require_choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    """`value`, or a `UserError` unless it is one of `allowed`."""
    if value not in allowed:
        raise UserError(f"{name}={value!r} is not allowed: use one of {list(allowed)}")
    return value


def require_windows(name: str, value: object) -> None:
    """A count of windows (an integer >= 1), or a fraction in (0, 1) of the text's."""
    if isinstance(value, float) and 0 < value < 1:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(
            f"{name}={value!r} is not allowed: it must be an integer >= 1 (windows) or a "
            "fraction of the corpus between 0 and 1"
        )

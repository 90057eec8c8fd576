"""`UserError`, a mistake a user can fix (its message names the bad value and what is allowed),
and the value checks every layer uses; `rnnlm.ops.cli` turns it into one line and exit 2."""

from __future__ import annotations


class UserError(ValueError):
    """Bad input: the message names the bad value and what is allowed."""


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

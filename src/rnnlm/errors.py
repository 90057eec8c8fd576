"""`UserError`, a mistake a user can fix (its message names the bad value and what is allowed),
and the value checks every layer uses; `rnnlm.ops.cli` turns it into one line and exit 2."""

from __future__ import annotations


class UserError(ValueError):
    """Bad input: the message names the bad value and what is allowed."""


def require_positive(name: str, value: float) -> None:
    """Raise a `UserError` unless `value` is a number > 0."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise UserError(f"{name}={value!r} is not allowed: it must be a number > 0")


def require_fraction(name: str, value: float) -> None:
    """Raise a `UserError` unless `value` is in [0, 1) (a dropout probability)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise UserError(f"{name}={value!r} is not allowed: it must be in [0, 1)")


def require_count(name: str, value: object, minimum: int = 1) -> None:
    """Raise a `UserError` unless `value` is an integer >= `minimum` (sizes, counts)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserError(f"{name}={value!r} is not allowed: it must be an integer >= {minimum}")


def require_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    """Raise a `UserError` unless `value` is one of `allowed`."""
    if value not in allowed:
        raise UserError(f"{name}={value!r} is not allowed: use one of {list(allowed)}")


def check_count(name: str, value, fraction_ok: bool = False) -> None:
    """Sizes are integers >= 1; `num_train`/`num_val` may also be fractions in (0, 1)."""
    if fraction_ok and isinstance(value, float) and 0 < value < 1:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        allowed = "an integer >= 1"
        if fraction_ok:
            allowed += " (windows) or a fraction of the corpus between 0 and 1"
        raise UserError(f"data.{name}={value!r} is not allowed: it must be {allowed}")

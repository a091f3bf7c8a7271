"""Checks of user-supplied settings, with messages that say what was wrong."""

from __future__ import annotations

__all__ = ["check_count", "check_positive"]


def check_positive(name: str, value: float | None, *, allow_none: bool = True) -> None:
    """Raise ``ValueError`` unless ``value`` is a positive number (or None when allowed)."""
    if value is None and allow_none:
        return
    if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")


def check_count(name: str, value: object, *, minimum: int = 1) -> int:
    """Return ``value`` if it is an integer >= ``minimum``, else raise ``ValueError``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value

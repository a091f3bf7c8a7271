"""Checks of user-supplied arguments, with messages that say what was wrong and what to pass.

A value of the wrong type raises ``TypeError``, a value of the right type out of range
``ValueError``, as the standard library does (``bool`` is refused where a number is expected:
``timeout=True`` is a bug, not one second).
"""

from __future__ import annotations

__all__ = [
    "check_bool",
    "check_count",
    "check_optional_count",
    "check_positive",
    "check_timeout",
]


def _type_name(value: object) -> str:
    return type(value).__name__


def check_positive(name: str, value: object, *, allow_none: bool = True) -> None:
    """Raise unless ``value`` is a positive number (or None when allowed).

    Raises:
        TypeError: not an ``int`` or ``float`` (nor None when allowed).
        ValueError: zero, negative or NaN.
    """
    if value is None and allow_none:
        return
    none = " or None" if allow_none else ""
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TypeError(
            f"{name} must be a positive number{none}, got {value!r} ({_type_name(value)})"
        )
    if not value > 0:  # also refuses NaN
        raise ValueError(f"{name} must be a positive number{none}, got {value!r}")


def check_timeout(name: str, value: object) -> None:
    """Raise unless ``value`` is a deadline in seconds (a positive number) or None."""
    if value is None:
        return
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TypeError(
            f"{name} must be a positive number of seconds or None (no deadline), "
            f"got {value!r} ({_type_name(value)}); e.g. {name}=2.5"
        )
    if not value > 0:
        raise ValueError(
            f"{name} must be a positive number of seconds or None (no deadline), got {value!r}"
        )


def check_count(name: str, value: object, *, minimum: int = 1) -> int:
    """Return ``value`` if it is an integer >= ``minimum``.

    Raises:
        TypeError: not an ``int`` (a ``bool``, a ``float`` or a string such as ``"8"``).
        ValueError: below ``minimum``.
    """
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(
            f"{name} must be an integer >= {minimum}, got {value!r} ({_type_name(value)})"
        )
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_optional_count(name: str, value: object, *, minimum: int = 1) -> int | None:
    """``check_count`` that also accepts None (for "choose for me")."""
    return None if value is None else check_count(name, value, minimum=minimum)


def check_bool(name: str, value: object) -> bool:
    """Return ``value`` if it is ``True`` or ``False``; raise ``TypeError`` otherwise."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r} ({_type_name(value)})")
    return value

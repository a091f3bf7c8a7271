"""Names of callables as metrics and errors show them, and the function behind a decorator."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

__all__ = ["function_name", "unwrap"]


def function_name(fn: Callable[..., Any]) -> str:
    """``module.qualname`` of a callable, looking through ``functools.partial``."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    module = getattr(fn, "__module__", None) or "?"
    qualname = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return f"{module}.{qualname}"


def unwrap(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The plain function behind a ``@cpu_bound`` / ``@blocking`` wrapper (or ``fn`` itself).

    Looks inside ``functools.partial`` so that keyword arguments bound to a decorated function
    still reach the undecorated one.
    """
    if isinstance(fn, functools.partial):
        inner = unwrap(fn.func)
        return fn if inner is fn.func else functools.partial(inner, *fn.args, **fn.keywords)
    target: Callable[..., Any] | None = getattr(fn, "__wrapped__", None)
    if target is not None and getattr(fn, "__hybridio_kind__", None) is not None:
        return target
    return fn

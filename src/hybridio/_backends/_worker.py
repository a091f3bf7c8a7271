"""Code that runs inside a worker process.

The worker itself is anyio's (``python -m anyio.to_process``): it receives one pickled
``("run", func, args)`` command at a time and answers with the pickled return value. hybridio sends
``run_batch`` as that function, so one round trip carries a whole batch of calls, and each call's
outcome is pickled on its own: one unpicklable result or exception fails only its own call.

Keep this module light: it is imported by every worker.
"""

from __future__ import annotations

import functools
import os
import pickle
import sys
import traceback
import types
from collections.abc import Callable, Sequence
from time import perf_counter
from typing import Any

__all__ = ["OK", "RAISED", "UNPICKLABLE", "EncodedCall", "run_batch", "unwrap"]

#: Outcome tags of one call, as sent back to the parent.
OK = 0  # (OK, pickled result, run seconds)
RAISED = 1  # (RAISED, pickled exception or None, run seconds, traceback text, "Type: message")
UNPICKLABLE = 2  # (UNPICKLABLE, (what, reason), run seconds)

_PROTOCOL = pickle.HIGHEST_PROTOCOL

#: One call as the parent sends it: pickled function, pickled arguments, and whether to map the
#: function over the first argument (a ``map_cpu`` chunk). See ``_serialize``.
EncodedCall = tuple[bytes, bytes, bool]


def unwrap(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The plain function behind a ``@cpu_bound`` / ``@blocking`` wrapper (or ``fn`` itself).

    Looks inside ``functools.partial`` so that keyword arguments bound to a decorated function
    still reach the undecorated one.
    """
    if isinstance(fn, functools.partial):
        inner = unwrap(fn.func)
        return fn if inner is fn.func else functools.partial(inner, *fn.args, **fn.keywords)
    target: Callable[..., Any] | None = getattr(fn, "__hybridio_target__", None)
    return target if target is not None else fn


# Module-level functions by their pickled reference: loading one imports and looks up its module
# each time. Only functions their module binds by name are kept: a partial or a closure sent by
# value is unpickled afresh for every call, as its state must be. Bounded: cleared when full.
_functions: dict[bytes, Callable[..., Any]] = {}
_MAX_FUNCTIONS = 256


def _load_function(blob: bytes) -> Callable[..., Any]:
    fn = _functions.get(blob)
    if fn is not None:
        return fn
    # cloudpickle output is loaded by plain pickle as long as cloudpickle is importable here.
    loaded = pickle.loads(blob)
    fn = unwrap(loaded)
    if type(loaded) is types.FunctionType:
        module = sys.modules.get(loaded.__module__)
        if module is not None and module.__dict__.get(loaded.__qualname__) is loaded:
            if len(_functions) >= _MAX_FUNCTIONS:
                _functions.clear()
            _functions[blob] = fn
    return fn


def _dumps_exception(exc: BaseException) -> bytes | None:
    try:
        blob = pickle.dumps(exc, _PROTOCOL)
        pickle.loads(blob)  # an exception with a custom __init__ may pickle but not unpickle
    except Exception:  # noqa: BLE001 - any failure means "cannot travel"; the parent says so
        return None
    return blob


def _run_one(call: EncodedCall) -> tuple[Any, ...]:
    fn_blob, args_blob, mapped = call
    try:
        fn = _load_function(fn_blob)
    except Exception as exc:  # noqa: BLE001 - reported to the caller as NotPicklable
        return (UNPICKLABLE, ("function", f"{type(exc).__name__}: {exc}"), 0.0)
    try:
        args = pickle.loads(args_blob)
    except Exception as exc:  # noqa: BLE001 - reported to the caller as NotPicklable
        return (UNPICKLABLE, ("arguments", f"{type(exc).__name__}: {exc}"), 0.0)
    start = perf_counter()
    try:
        value = [fn(item) for item in args[0]] if mapped else fn(*args)
    except BaseException as exc:  # noqa: BLE001 - the user's exception goes back to the caller
        elapsed = perf_counter() - start
        tb = "".join(traceback.format_exception(exc))
        return (RAISED, _dumps_exception(exc), elapsed, tb, f"{type(exc).__name__}: {exc}")
    elapsed = perf_counter() - start
    try:
        return (OK, pickle.dumps(value, _PROTOCOL), elapsed)
    except Exception as exc:  # noqa: BLE001 - reported to the caller as NotPicklable
        return (UNPICKLABLE, ("result", f"{type(exc).__name__}: {exc}"), elapsed)


def _rss_bytes() -> int:
    """This process's resident set size now (Linux), else its peak (POSIX), else 0."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024
    except (ImportError, OSError):  # pragma: no cover - Windows
        return 0


def run_batch(
    calls: Sequence[EncodedCall], want_rss: bool = False
) -> tuple[list[tuple[Any, ...]], int]:
    """Run each encoded call (see ``_serialize``) in order; return the outcomes and this RSS."""
    return [_run_one(call) for call in calls], (_rss_bytes() if want_rss else 0)

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
from collections.abc import Callable, Sequence
from time import perf_counter
from typing import Any

__all__ = ["OK", "RAISED", "UNPICKLABLE", "map_chunk", "run_batch", "unwrap"]

#: Outcome tags of one call, as sent back to the parent.
OK = 0  # (OK, pickled result, run seconds)
RAISED = 1  # (RAISED, pickled exception or None, run seconds, traceback text, "Type: message")
UNPICKLABLE = 2  # (UNPICKLABLE, (what, reason), run seconds)

_PROTOCOL = pickle.HIGHEST_PROTOCOL


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


def _loads(blob: bytes) -> Any:
    # cloudpickle output is loaded by plain pickle as long as cloudpickle is importable here.
    return pickle.loads(blob)


def _dumps_exception(exc: BaseException) -> bytes | None:
    try:
        blob = pickle.dumps(exc, _PROTOCOL)
        pickle.loads(blob)  # an exception with a custom __init__ may pickle but not unpickle
    except Exception:  # noqa: BLE001 - any failure means "cannot travel"; the parent says so
        return None
    return blob


def _run_one(blob: bytes) -> tuple[Any, ...]:
    try:
        fn, args = _loads(blob)
    except Exception as exc:  # noqa: BLE001 - reported to the caller as NotPicklable
        return (UNPICKLABLE, ("function", f"{type(exc).__name__}: {exc}"), 0.0)
    fn = unwrap(fn)
    start = perf_counter()
    try:
        value = fn(*args)
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


def run_batch(blobs: Sequence[bytes], want_rss: bool = False) -> tuple[list[tuple[Any, ...]], int]:
    """Run each pickled ``(fn, args)`` in order; return the outcomes and this worker's RSS."""
    return [_run_one(blob) for blob in blobs], (_rss_bytes() if want_rss else 0)


def map_chunk(fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
    """Apply ``fn`` to each item of a ``map_cpu`` chunk."""
    fn = unwrap(fn)
    return [fn(item) for item in items]


def identify() -> int:
    """The worker's pid (used to check a fresh worker)."""
    return os.getpid()

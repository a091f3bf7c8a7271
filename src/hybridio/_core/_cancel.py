"""Cooperative cancellation for thread work.

A thread cannot be killed. When the caller of ``run_blocking`` times out or is cancelled, hybridio
abandons the thread (counted in ``stats()``) and raises the caller's flag; the function can poll
``cancel_requested()`` and return early.
"""

from __future__ import annotations

import threading

__all__ = ["CancelToken", "cancel_requested", "current_token", "use_token"]

_local = threading.local()


class CancelToken:
    """A flag the event loop raises when the caller of a thread call gives up.

    A plain attribute: one thread writes it once, others only read it (atomic in CPython), and
    nobody blocks on it, so a ``threading.Event`` (a lock and a condition per call) is not needed.
    """

    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


def current_token() -> CancelToken | None:
    token: CancelToken | None = getattr(_local, "token", None)
    return token


class use_token:
    """Make ``token`` the current thread's token for the duration of a call."""

    __slots__ = ("_previous", "_token")

    def __init__(self, token: CancelToken) -> None:
        self._token = token
        self._previous: CancelToken | None = None

    def __enter__(self) -> CancelToken:
        self._previous = current_token()
        _local.token = self._token
        return self._token

    def __exit__(self, *exc_info: object) -> None:
        _local.token = self._previous


def cancel_requested() -> bool:
    """Return True when the caller of the current ``run_blocking`` call has given up.

    Call it from a function running in a hybridio worker thread (``run_blocking`` /
    ``kind="blocking"``) at convenient points of a long loop, and return early when it is true:
    the caller has already received ``OffloadTimeout`` (or was cancelled) and the result will be
    discarded. Anywhere else (inline, in a worker process, outside hybridio) it returns False.

    Example::

        def crunch(rows):
            for row in rows:
                if hybridio.cancel_requested():
                    return None
                handle(row)
    """
    token = current_token()
    return token is not None and token.cancelled

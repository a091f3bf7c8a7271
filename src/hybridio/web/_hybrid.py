"""What a hybrid server adds to a web framework, with no framework in it.

``Hybrid`` holds a server's Runtime, admission gates, loop monitor and settings; the aiohttp
middleware (``_app``) and the ASGI middleware (``asgi``) both use it, so they admit, time out and
answer errors the same way. Per request, one context variable holds the deadline and the kind the
route was admitted as; ``offload_current`` reads it.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypedDict, TypeVar

import anyio

from .._core._exceptions import (
    HybridioError,
    OffloadTimeout,
    Overloaded,
    RuntimeClosed,
    WorkerCrashed,
)
from .._monitor._loop_monitor import LoopMonitor
from .._runtime._runtime import KINDS, Kind, Runtime
from ._admission import Admission, Limit, Rejected, default_limits, retry_after_header
from ._observe import ConnectionCounts, metrics_text, recent_lag
from ._work import prepare_worker

__all__ = [
    "DeadlineExceeded",
    "Hybrid",
    "HybridOptions",
    "RequestState",
    "error_answer",
    "log_server_error",
    "offload_current",
    "positive",
]

T = TypeVar("T")
logger = logging.getLogger("hybridio.web")

_WARM_UP_TIMEOUT = 30.0
#: Bounds of the grace a process call gets past its request's deadline before it is killed.
_MIN_GRACE = 0.05
_MAX_GRACE = 1.0
#: The monitor's heartbeat interval at most (the default 10 ms is more than /healthz needs).
_MONITOR_INTERVAL = 0.05


class DeadlineExceeded(HybridioError, TimeoutError):
    """The request's own deadline (hybridio's, not the handler's) passed: answered 504."""

    def __init__(self, timeout: float, where: str = "") -> None:
        self.timeout = timeout
        self.where = where
        super().__init__(f"request deadline of {timeout:g} s exceeded{where}")

    def __reduce__(self) -> tuple[object, ...]:
        return (DeadlineExceeded, (self.timeout, self.where))


class HybridOptions(TypedDict, total=False):
    """The options of ``hybridio.web.setup`` and ``HybridioMiddleware`` (see ``setup``)."""

    runtime: Runtime | None
    cpu_workers: int | None
    threads: int | None
    limits: Mapping[str, Limit] | None
    timeout: float
    max_timeout: float
    timeout_header: str
    max_lag: float
    worker_nice: int


@dataclass(slots=True)
class RequestState:
    """One request's deadline (``time.monotonic()``), its timeout, the kind it holds a slot of."""

    hybrid: Hybrid
    deadline: float
    timeout: float
    admitted: str | None = None


_request: ContextVar[RequestState | None] = ContextVar("hybridio_web_request", default=None)


def positive(name: str, value: float) -> float:
    """``value`` as a float, or ``ValueError`` unless it is a positive finite number."""
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 < value < math.inf:
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


class Hybrid:
    """A server's hybridio state: Runtime, admission gates, loop monitor, deadlines, health.

    Framework integrations make one per app (``hybridio.web.setup``, ``HybridioMiddleware``);
    the arguments are theirs, documented on ``hybridio.web.setup``.
    """

    def __init__(
        self,
        *,
        runtime: Runtime | None = None,
        cpu_workers: int | None = None,
        threads: int | None = None,
        limits: Mapping[str, Limit] | None = None,
        timeout: float = 30.0,
        max_timeout: float = 300.0,
        timeout_header: str = "X-Request-Timeout",
        max_lag: float = 0.5,
        worker_nice: int = 0,
    ) -> None:
        if runtime is not None and (cpu_workers is not None or threads is not None or worker_nice):
            raise ValueError("pass either runtime= or cpu_workers/threads/worker_nice, not both")
        self.timeout = positive("timeout", timeout)
        self.max_timeout = positive("max_timeout", max_timeout)
        self.timeout_header = timeout_header
        self.max_lag = positive("max_lag", max_lag)
        self.lag_window = 2.0
        if runtime is None:
            runtime = Runtime(
                cpu_workers=cpu_workers,
                threads=threads,
                initializer=prepare_worker,
                initargs=(worker_nice,),
            )
        self.runtime = runtime
        chosen = default_limits(runtime.cpu_workers, runtime.threads)
        for kind, limit in (limits or {}).items():
            if kind not in KINDS:
                raise ValueError(f"limits: kind must be one of {', '.join(KINDS)}, got {kind!r}")
            if not isinstance(limit, Limit):
                raise TypeError(f"limits[{kind!r}] must be a hybridio.web.Limit, got {limit!r}")
            chosen[kind] = limit
        self.admission = Admission(chosen)
        # Blocks are recorded from half the health limit (at most 50 ms), so /healthz sees them.
        threshold = min(0.05, self.max_lag / 2)
        self.monitor = LoopMonitor(
            threshold=threshold, interval=min(_MONITOR_INTERVAL, threshold / 2)
        )
        #: The connection counts of the server serving the app (set by ``hybridio.web.serve``).
        self.connections: ConnectionCounts | None = None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Hybrid]:
        """Start the Runtime (every worker warmed up) and the loop monitor; stop them on exit."""
        async with self.runtime as runtime, self.monitor:
            await _warm_up(runtime)
            yield self

    def request_timeout(self, raw: str | None, route_timeout: float | None = None) -> float:
        """The request's timeout: the header's value, else the route's, else the default.

        Raises:
            ValueError: the header is not a number of seconds in ``(0, max_timeout]``.
        """
        if raw is None:
            return self.timeout if route_timeout is None else route_timeout
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not 0 < value <= self.max_timeout:
            raise ValueError(
                f"{self.timeout_header} must be a number of seconds in "
                f"(0, {self.max_timeout:g}], got {raw!r}"
            )
        return value

    def enter(self, timeout: float, admitted: str | None = None) -> RequestState:
        """Make ``RequestState`` for a request starting now (the caller sets it current)."""
        return RequestState(self, time.monotonic() + timeout, timeout, admitted)

    async def pause(self, exc: BaseException) -> None:
        """Hold a refusal before its 503 goes out (``Limit.pause``); other errors pass at once."""
        if isinstance(exc, Rejected):
            await self.admission.gate(exc.kind).pause()

    def metrics(self) -> str:
        """Prometheus text of the runtime, the loop monitor and the admission gates."""
        return metrics_text(self.runtime, self.monitor, self.admission, self.connections)

    def health(self) -> tuple[int, dict[str, Any]]:
        """``(status, body)`` of the health endpoint: 503 while the loop lags past ``max_lag``."""
        lag = recent_lag(self.monitor, self.lag_window)
        healthy = lag <= self.max_lag
        body = {
            "status": "ok" if healthy else "unhealthy",
            "loop_lag": lag,
            "max_loop_lag": self.max_lag,
        }
        return (200 if healthy else 503), body


async def _warm_up(runtime: Runtime) -> None:
    # Start every worker process before the first request: a cold start (hundreds of ms) would
    # otherwise count against the first requests' deadlines. One call starts them all.
    await runtime.run_cpu(os.getpid, timeout=_WARM_UP_TIMEOUT)
    with anyio.move_on_after(_WARM_UP_TIMEOUT):
        # No event tells when a worker is up: poll the pool's gauge.
        while runtime.stats()["cpu"].workers < runtime.cpu_workers:  # noqa: ASYNC110
            await anyio.sleep(0.01)


def current_request() -> RequestState:
    """The request being handled; ``RuntimeError`` outside a hybridio server's request."""
    state = _request.get()
    if state is None:
        raise RuntimeError(
            "offload() needs a request of a hybridio server: an aiohttp app set up with "
            "hybridio.web.setup() / create_app(), or an ASGI app wrapped in HybridioMiddleware"
        )
    return state


async def offload_current(fn: Callable[..., T], args: tuple[Any, ...], kind: Kind) -> T:
    """Run ``fn(*args)`` as ``kind`` for the current request: admitted, bounded by its deadline."""
    state = current_request()
    gate = state.hybrid.admission.gates[kind]
    if state.admitted == kind:
        return await _run(state, fn, args, kind, gate.service_time)
    start = await gate.enter(state.deadline)
    try:
        return await _run(state, fn, args, kind, gate.service_time)
    finally:
        gate.leave(start)


async def _run(
    state: RequestState, fn: Callable[..., T], args: tuple[Any, ...], kind: Kind, typical: float
) -> T:
    left = state.deadline - time.monotonic()
    if left <= 0:
        raise DeadlineExceeded(state.timeout, " before its work could start")
    if kind != "cpu":
        # The request's cancel scope (set by the middleware at the deadline) cancels it.
        return await state.hybrid.runtime.run(fn, *args, kind=kind)
    # A process call past its deadline has its worker killed, and a new worker costs far more
    # than a typical call: in a storm, kills cascade (docs/web.md, "Deadlines"). So the call
    # gets a grace of about one typical call past the deadline to finish (its result is then
    # discarded and the answer is still 504), shielded from the request's cancel scope; the
    # runtime's own timeout kills it after that.
    grace = min(_MAX_GRACE, max(_MIN_GRACE, typical))
    try:
        with anyio.CancelScope(shield=True):
            result = await state.hybrid.runtime.run(fn, *args, kind=kind, timeout=left + grace)
    except OffloadTimeout as exc:
        raise DeadlineExceeded(state.timeout) from exc
    if time.monotonic() >= state.deadline:
        raise DeadlineExceeded(state.timeout)
    return result


Answer = tuple[int, str, dict[str, str]]


def error_answer(exc: BaseException, timeout: float) -> Answer | None:
    """``(status, message, headers)`` for an error hybridio answers itself, else None.

    Refusals are 503 with ``Retry-After``; only hybridio's own deadline is 504; a worker process
    that crashed is 500 (``log_server_error`` logs it in one line: its traceback is hybridio's,
    the same for every request). Any other error (a handler's own ``TimeoutError`` included) is
    the framework's 500.
    """
    if isinstance(exc, Rejected):
        return 503, str(exc), {"Retry-After": retry_after_header(exc.retry_after)}
    if isinstance(exc, Overloaded):
        return 503, f"server busy: {exc}", {"Retry-After": "1"}
    if isinstance(exc, RuntimeClosed):
        return 503, "server shutting down", {"Retry-After": "1"}
    if isinstance(exc, DeadlineExceeded):
        return 504, str(exc), {}
    if isinstance(exc, WorkerCrashed):
        # The details (pid, signal, function) go to the log, not to the client.
        return 500, "internal server error: the worker process running this request crashed", {}
    return None


def log_server_error(method: str, path: str, status: int, exc: BaseException) -> None:
    """Log an error answered by ``error_answer`` with a 500: one line, no traceback."""
    if status == 500:
        logger.error("%s %s answered 500: %s: %s", method, path, type(exc).__name__, exc)


def set_request(state: RequestState) -> Any:
    """Make ``state`` the current request; returns the token for ``reset_request``."""
    return _request.set(state)


def reset_request(token: Any) -> None:
    """Undo ``set_request``."""
    _request.reset(token)

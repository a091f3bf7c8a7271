"""The app factory: an aiohttp application whose handlers offload through a hybridio Runtime.

What every request gets (from one middleware): the app's Runtime as the current one, so that a
plain ``await hybridio.run_cpu(...)`` in a handler uses it; a deadline (the route's default or the
``X-Request-Timeout`` header) that bounds the whole handler; admission per offload kind (503 +
``Retry-After`` at once when full); and offload errors turned into HTTP answers (503, 504).
"""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from .._core._exceptions import Overloaded, RuntimeClosed
from .._runtime._runtime import KINDS, Kind, Runtime, use_runtime
from .._monitor._loop_monitor import LoopMonitor
from ._admission import Admission, Limit, Rejected, retry_after_header
from ._observe import metrics_text, recent_lag
from ._work import prepare_worker

__all__ = [
    "ADMISSION",
    "MONITOR",
    "RUNTIME",
    "AsyncioRequired",
    "create_app",
    "offload",
    "offload_route",
    "require_asyncio",
]

T = TypeVar("T")
H = TypeVar("H", bound=Callable[[web.Request], Awaitable[web.StreamResponse]])

# The handler's own deadline fires a little after the offload's, so that offloaded work times out
# through the core (which kills the worker and says so) rather than by plain cancellation.
_SLACK = 0.05
_WARM_UP_TIMEOUT = 30.0
# Per request, in the handler's task: set by the middleware, read by offload().
_deadline: ContextVar[float | None] = ContextVar("hybridio_web_deadline", default=None)
_admitted: ContextVar[str | None] = ContextVar("hybridio_web_admitted", default=None)
_ROUTE_ATTRIBUTE = "__hybridio_route__"


class AsyncioRequired(RuntimeError):
    """Raised when hybridio.web is used on an event loop that is not asyncio (trio)."""


def require_asyncio() -> None:
    """Raise ``AsyncioRequired`` unless an asyncio (or uvloop) event loop is running."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        raise AsyncioRequired(
            "hybridio.web serves with aiohttp, which runs only on an asyncio event loop (or "
            "uvloop), and no asyncio loop is running here (trio?). Start the server with "
            "asyncio.run() or anyio.run(..., backend='asyncio'), or use `hybridio serve`; the "
            "rest of hybridio (run_cpu, Runtime, ...) works on trio as well."
        ) from None


@dataclass(frozen=True)
class _Settings:
    timeout: float
    max_timeout: float
    timeout_header: str
    max_lag: float
    lag_window: float


@dataclass(frozen=True)
class _RouteOptions:
    kind: Kind | None = None
    timeout: float | None = None


RUNTIME = web.AppKey("hybridio.runtime", Runtime)
ADMISSION = web.AppKey("hybridio.admission", Admission)
_SETTINGS = web.AppKey("hybridio.settings", _Settings)
MONITOR = web.AppKey("hybridio.monitor", LoopMonitor)


def _positive(name: str, value: float) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 < value < math.inf:
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


def offload_route(*, kind: Kind | None = None, timeout: float | None = None) -> Callable[[H], H]:
    """Declare what a handler does: the offload kind it is admitted as, and its default deadline.

    With ``kind``, the whole request holds a slot of that kind's admission limit (503 when full),
    so plain ``await hybridio.run_cpu(...)`` calls inside it are admitted once, up front.
    ``timeout`` replaces the app's default deadline for this route (the request header still
    overrides it, up to the app's ``max_timeout``).

    Example::

        @routes.get("/report")
        @hybridio.web.offload_route(kind="cpu", timeout=5.0)
        async def report(request: web.Request) -> web.Response:
            return web.json_response(await hybridio.run_cpu(build_report, request.query["id"]))
    """
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if timeout is not None:
        _positive("timeout", timeout)

    def decorate(handler: H) -> H:
        setattr(handler, _ROUTE_ATTRIBUTE, _RouteOptions(kind, timeout))
        return handler

    return decorate


async def offload(request: web.Request, fn: Callable[..., T], *args: Any, kind: Kind = "cpu") -> T:
    """Run ``fn(*args)`` as ``kind`` for this request: admitted, and bounded by its deadline.

    ``kind`` is ``"inline"``, ``"blocking"`` (a thread) or ``"cpu"`` (a process). Waits for an
    admission slot of that kind if its queue has room; the time left until the request's deadline
    becomes the offload ``timeout`` (a timed-out process call has its worker killed).

    Raises:
        Rejected: no slot and no room in the queue (the middleware answers 503 + Retry-After).
        OffloadTimeout: the deadline passed (the middleware answers 504).
    """
    runtime = request.app[RUNTIME]
    deadline = _deadline.get()
    if deadline is None:
        raise RuntimeError("offload() needs a request of an app made by hybridio.web.create_app()")
    if _admitted.get() == kind:
        return await runtime.run(fn, *args, kind=kind, timeout=_remaining(deadline))
    async with request.app[ADMISSION].gate(kind).admit(timeout=_remaining(deadline)):
        return await runtime.run(fn, *args, kind=kind, timeout=_remaining(deadline))


def _remaining(deadline: float) -> float:
    left = deadline - asyncio.get_running_loop().time()
    if left <= 0:
        raise TimeoutError("the request's deadline passed before its work could start")
    return left


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message, "status": status}, status=status, headers=headers)


def _request_timeout(request: web.Request, settings: _Settings, route: _RouteOptions) -> float:
    raw = request.headers.get(settings.timeout_header)
    if raw is None:
        return route.timeout if route.timeout is not None else settings.timeout
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 < value <= settings.max_timeout:
        raise web.HTTPBadRequest(
            text=f"{settings.timeout_header} must be a number of seconds in "
            f"(0, {settings.max_timeout:g}], got {raw!r}",
        )
    return value


@web.middleware
async def _hybrid_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    app = request.app
    route: _RouteOptions = getattr(request.match_info.handler, _ROUTE_ATTRIBUTE, _RouteOptions())
    timeout = _request_timeout(request, app[_SETTINGS], route)
    tokens = (
        _deadline.set(asyncio.get_running_loop().time() + timeout),
        _admitted.set(route.kind),
    )
    try:
        with use_runtime(app[RUNTIME]), anyio.fail_after(timeout + _SLACK):
            if route.kind is None:
                return await handler(request)
            async with app[ADMISSION].gate(route.kind).admit():
                return await handler(request)
    except Rejected as exc:
        headers = {"Retry-After": retry_after_header(exc.limit.retry_after)}
        return _error(503, str(exc), headers)
    except Overloaded as exc:
        return _error(503, f"server busy: {exc}", {"Retry-After": "1"})
    except RuntimeClosed:
        return _error(503, "server shutting down", {"Retry-After": "1"})
    except TimeoutError as exc:  # OffloadTimeout is one too
        return _error(504, f"request deadline of {timeout:g} s exceeded: {exc}")
    finally:
        _admitted.reset(tokens[1])
        _deadline.reset(tokens[0])


async def _metrics(request: web.Request) -> web.Response:
    text = metrics_text(request.app[RUNTIME], request.app[MONITOR], request.app[ADMISSION])
    return web.Response(text=text, content_type="text/plain", charset="utf-8")


async def _healthz(request: web.Request) -> web.Response:
    settings = request.app[_SETTINGS]
    lag = recent_lag(request.app[MONITOR], settings.lag_window)
    max_lag = settings.max_lag
    healthy = lag <= max_lag
    body = {"status": "ok" if healthy else "unhealthy", "loop_lag": lag, "max_loop_lag": max_lag}
    return web.json_response(body, status=200 if healthy else 503)


def create_app(
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
    metrics_path: str | None = "/metrics",
    health_path: str | None = "/healthz",
    middlewares: Iterable[Middleware] = (),
) -> web.Application:
    """Make an aiohttp app with a hybridio Runtime, admission control, deadlines and health.

    The Runtime (``runtime``, else one made from ``cpu_workers``/``threads``) is entered when the
    app starts and left when it stops: worker processes live as long as the server.

    Args:
        limits: per kind (``"inline"``, ``"blocking"``, ``"cpu"``) in-flight and queue bounds;
            by default ``cpu``: workers + 2x workers queued, ``blocking``: threads + 2x threads,
            ``inline``: 1 + 4.
        timeout: default deadline of a request (seconds); routes override it with
            ``offload_route(timeout=...)``, clients with the ``timeout_header`` request header
            (up to ``max_timeout``; a bad value is answered 400).
        max_lag: ``health_path`` answers 503 when the loop lag is above this (seconds).
        worker_nice: added to the worker processes' niceness, so the event loop gets the CPU
            first when workers saturate every core (0: unchanged). The workers of a Runtime
            made here also ignore SIGINT/SIGTERM: the server drains, then stops them.

    Raises:
        ValueError: a bad limit, timeout or kind.

    Example::

        app = hybridio.web.create_app(cpu_workers=4, timeout=10.0)
        app.router.add_get("/thumb", thumbnail_handler)
        hybridio.web.run_app(app, port=8080)
    """
    if runtime is not None and (cpu_workers is not None or threads is not None or worker_nice):
        raise ValueError("pass either runtime= or cpu_workers/threads/worker_nice, not both")
    settings = _Settings(
        _positive("timeout", timeout),
        _positive("max_timeout", max_timeout),
        timeout_header,
        _positive("max_lag", max_lag),
        lag_window=2.0,
    )
    if runtime is None:
        runtime = Runtime(
            cpu_workers=cpu_workers,
            threads=threads,
            initializer=prepare_worker,
            initargs=(worker_nice,),
        )
    chosen = {
        "cpu": Limit(runtime.cpu_workers, 2 * runtime.cpu_workers),
        "blocking": Limit(runtime.threads, 2 * runtime.threads),
        "inline": Limit(1, 4),
        # kind="auto" picks one of the above per function; its gate bounds them all together.
        "auto": Limit(runtime.cpu_workers + runtime.threads, 2 * runtime.threads),
    }
    for kind, limit in (limits or {}).items():
        if kind not in KINDS:
            raise ValueError(f"limits: kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if not isinstance(limit, Limit):
            raise TypeError(f"limits[{kind!r}] must be a hybridio.web.Limit, got {limit!r}")
        chosen[kind] = limit
    app = web.Application(middlewares=[_hybrid_middleware, *middlewares])
    app[RUNTIME] = runtime
    app[ADMISSION] = Admission(chosen)
    app[_SETTINGS] = settings
    # Blocks are recorded from half the health limit, so /healthz sees them for a while.
    threshold = min(0.05, settings.max_lag / 2)
    app[MONITOR] = LoopMonitor(threshold=threshold)
    app.cleanup_ctx.append(_lifecycle)
    if metrics_path is not None:
        app.router.add_get(metrics_path, _metrics)
    if health_path is not None:
        app.router.add_get(health_path, _healthz)
    return app


async def _lifecycle(app: web.Application) -> Any:
    require_asyncio()
    # Entered and left in the task that starts and stops the app (aiohttp runs both in one).
    async with app[RUNTIME] as runtime, app[MONITOR]:
        await _warm_up(runtime)
        yield


async def _warm_up(runtime: Runtime) -> None:
    # Start every worker process before the first request: a cold start (hundreds of ms) would
    # otherwise count against the first requests' deadlines. One call starts them all.
    await runtime.run_cpu(os.getpid, timeout=_WARM_UP_TIMEOUT)
    with anyio.move_on_after(_WARM_UP_TIMEOUT):
        # No event tells when a worker is up: poll the pool's gauge.
        while runtime.stats()["cpu"].workers < runtime.cpu_workers:  # noqa: ASYNC110
            await anyio.sleep(0.01)

"""hybridio for aiohttp: ``setup(app)`` on an existing application, or ``create_app()``.

What every request gets (from one middleware): the app's Runtime as the current one, so that a
plain ``await hybridio.run_cpu(...)`` in a handler uses it; a deadline (the route's default or the
``X-Request-Timeout`` header) that bounds the whole handler; admission per offload kind (503 +
``Retry-After`` at once when the queue cannot serve it in time); only hybridio's own deadline
answered 504. ``/metrics`` and ``/healthz`` come as routes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, Unpack

import anyio
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from .._core._exceptions import AsyncioRequired
from .._export import CONTENT_TYPE
from .._monitor._loop_monitor import LoopMonitor
from .._runtime._runtime import KINDS, Kind, Runtime, use_runtime
from ._admission import Admission
from ._hybrid import (
    DeadlineExceeded,
    Hybrid,
    HybridOptions,
    error_answer,
    log_server_error,
    offload_current,
    positive,
    reset_request,
    set_request,
)

__all__ = [
    "ADMISSION",
    "HYBRID",
    "MONITOR",
    "RUNTIME",
    "AsyncioRequired",
    "create_app",
    "offload",
    "offload_route",
    "require_asyncio",
    "setup",
]

T = TypeVar("T")
H = TypeVar("H", bound=Callable[[web.Request], Awaitable[web.StreamResponse]])

_ROUTE_ATTRIBUTE = "__hybridio_route__"
logger = logging.getLogger("hybridio.web")


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
class _RouteOptions:
    kind: Kind | None = None
    timeout: float | None = None


_NO_OPTIONS = _RouteOptions()
HYBRID = web.AppKey("hybridio.hybrid", Hybrid)
RUNTIME = web.AppKey("hybridio.runtime", Runtime)
ADMISSION = web.AppKey("hybridio.admission", Admission)
MONITOR = web.AppKey("hybridio.monitor", LoopMonitor)


def offload_route(*, kind: Kind | None = None, timeout: float | None = None) -> Callable[[H], H]:
    """Declare what a handler does: the offload kind it is admitted as, and its default deadline.

    With ``kind``, the whole request holds a slot of that kind's admission limit (503 when the
    queue cannot take it), so plain ``await hybridio.run_cpu(...)`` calls inside it are admitted
    once, up front. ``timeout`` replaces the app's default deadline for this route (the request
    header still overrides it, up to the app's ``max_timeout``).

    Example::

        @routes.get("/report")
        @hybridio.web.offload_route(kind="cpu", timeout=5.0)
        async def report(request: web.Request) -> web.Response:
            return web.json_response(await hybridio.run_cpu(build_report, request.query["id"]))
    """
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if timeout is not None:
        positive("timeout", timeout)

    def decorate(handler: H) -> H:
        setattr(handler, _ROUTE_ATTRIBUTE, _RouteOptions(kind, timeout))
        return handler

    return decorate


async def offload(request: web.Request, fn: Callable[..., T], *args: Any, kind: Kind = "cpu") -> T:
    """Run ``fn(*args)`` as ``kind`` for this request: admitted, and bounded by its deadline.

    ``kind`` is ``"inline"``, ``"blocking"`` (a thread) or ``"cpu"`` (a process). Waits for an
    admission slot of that kind if its queue can serve it within the request's deadline; the time
    left until the deadline becomes the offload ``timeout`` (a timed-out process call has its
    worker killed).

    Raises:
        Rejected: no slot, and the queue cannot take it (the middleware answers 503).
        DeadlineExceeded: the request's deadline passed (the middleware answers 504).
    """
    return await offload_current(fn, args, kind)


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message, "status": status}, status=status, headers=headers)


@web.middleware
async def _hybrid_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    hybrid = request.config_dict[HYBRID]
    route: _RouteOptions = getattr(request.match_info.handler, _ROUTE_ATTRIBUTE, _NO_OPTIONS)
    try:
        timeout = hybrid.request_timeout(request.headers.get(hybrid.timeout_header), route.timeout)
    except ValueError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    state = hybrid.enter(timeout, route.kind)
    token = set_request(state)
    try:
        with (
            anyio.CancelScope(deadline=anyio.current_time() + timeout),
            use_runtime(hybrid.runtime),
        ):
            if route.kind is None:
                return await handler(request)
            async with hybrid.admission.gate(route.kind).admit(state.deadline):
                return await handler(request)
        # Only reached when the deadline cancelled the handler.
        raise DeadlineExceeded(timeout)
    except web.HTTPException:
        raise  # a response: aiohttp sends it
    except Exception as exc:
        answer = error_answer(exc, timeout)
        if answer is not None:
            log_server_error(request.method, request.path, answer[0], exc)
            await hybrid.pause(exc)
            return _error(*answer)
        # Any other error is the handler's: logged with its traceback, answered 500 in JSON like
        # every error hybridio answers (aiohttp's own answer is plain text; it would also
        # answer a handler's own TimeoutError 504 and log it only at debug level, when it is
        # the handler's error, not the request's deadline).
        logger.error("Error handling request %s %s", request.method, request.path, exc_info=exc)
        if isinstance(exc, TimeoutError):
            return _error(500, "internal server error: the handler raised TimeoutError")
        return _error(500, "internal server error")
    finally:
        reset_request(token)


async def _metrics(request: web.Request) -> web.Response:
    body = request.config_dict[HYBRID].metrics().encode()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def _healthz(request: web.Request) -> web.Response:
    status, body = request.config_dict[HYBRID].health()
    return web.json_response(body, status=status)


def setup(
    app: web.Application,
    *,
    metrics_path: str | None = "/metrics",
    health_path: str | None = "/healthz",
    **options: Unpack[HybridOptions],
) -> web.Application:
    """Add hybridio to an existing aiohttp app: runtime, admission, deadlines, metrics, health.

    The Runtime (``runtime``, else one made from ``cpu_workers``/``threads``) is entered when the
    app starts (``cleanup_ctx``, worker processes warmed up before the first request) and left
    when it stops. hybridio's middleware goes first, so its deadline bounds the app's own
    middlewares too. Call it before the app starts; returns ``app``.

    Args:
        metrics_path: Prometheus text of the runtime, loop and admission (None: no route).
        health_path: 200/503 from the loop's lag (None: no route).
        runtime: the Runtime to use (default: one made from ``cpu_workers`` and ``threads``,
            whose workers ignore SIGINT/SIGTERM: the server drains, then stops them).
        cpu_workers: worker processes (default: the number of CPUs).
        threads: worker threads for ``kind="blocking"``.
        limits: per kind (``"inline"``, ``"blocking"``, ``"cpu"``) a ``Limit``; by default
            ``cpu``: 8 slots per worker and up to 256 queued per worker, ``blocking``: one slot
            per thread and up to 32 queued per thread (refusals of both held 0.5 s),
            ``inline``: 1 + 4. A request queues only when the queue can serve it within its
            deadline (docs/web.md, "Admission").
        timeout: default deadline of a request (seconds, default 30); routes override it with
            ``offload_route(timeout=...)``, clients with the ``timeout_header`` request header
            (default ``X-Request-Timeout``, up to ``max_timeout``, default 300; a bad value is
            answered 400).
        max_lag: ``health_path`` answers 503 when the loop lag is above this (default 0.5 s).
        worker_nice: added to the worker processes' niceness (default 0: unchanged).

    Raises:
        ValueError: a bad limit, timeout or kind.

    Example::

        app = web.Application()
        app.router.add_get("/thumb", thumbnail_handler)
        hybridio.web.setup(app, cpu_workers=4, timeout=10.0)
        web.run_app(app)
    """
    hybrid = Hybrid(**options)
    app[HYBRID] = hybrid
    app[RUNTIME] = hybrid.runtime
    app[ADMISSION] = hybrid.admission
    app[MONITOR] = hybrid.monitor
    app.middlewares.insert(0, _hybrid_middleware)
    app.cleanup_ctx.append(_lifecycle)
    if metrics_path is not None:
        app.router.add_get(metrics_path, _metrics)
    if health_path is not None:
        app.router.add_get(health_path, _healthz)
    return app


def create_app(*, middlewares: Iterable[Middleware] = (), **options: Any) -> web.Application:
    """A new aiohttp app with ``setup(app, **options)`` applied (see ``setup``).

    Example::

        app = hybridio.web.create_app(cpu_workers=4, timeout=10.0)
        app.router.add_get("/thumb", thumbnail_handler)
        hybridio.web.run_app(app, port=8080)
    """
    return setup(web.Application(middlewares=list(middlewares)), **options)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    require_asyncio()
    # Entered and left in the task that starts and stops the app (aiohttp runs both in one).
    async with app[HYBRID].running():
        yield

"""hybridio for ASGI apps (Starlette, FastAPI, any ASGI framework): one middleware.

``HybridioMiddleware`` gives an ASGI app what ``hybridio.web.setup`` gives an aiohttp one: a
Runtime started and stopped with the app's lifespan (worker processes warmed up before the first
request), admission per offload kind (503 + ``Retry-After`` when the queue cannot serve a request
within its deadline), a per-request deadline (``X-Request-Timeout``; only hybridio's own deadline
is answered 504), ``/metrics`` (Prometheus text) and ``/healthz``. Handlers call ``offload``, or
take an ``Offloader`` as a FastAPI dependency::

    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from hybridio.web.asgi import HybridioMiddleware, offload

    async def thumb(request):
        png = await offload(make_thumbnail, await request.body(), kind="blocking")
        return Response(png, media_type="image/png")

    app = Starlette(routes=[...], middleware=[Middleware(HybridioMiddleware, cpu_workers=4)])

    # FastAPI: async def report(offload: Offloader = Depends(offloader)) -> ...

Add it as a middleware of the app (as above) so that the framework's own error middleware sits
outside it. It needs no framework: the ASGI interface is all it uses; any anyio backend works.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from contextlib import AsyncExitStack
from typing import Any, TypeVar, Unpack

import anyio

from .._export import CONTENT_TYPE
from .._runtime._runtime import Kind, use_runtime
from ._hybrid import (
    DeadlineExceeded,
    Hybrid,
    HybridOptions,
    current_request,
    error_answer,
    log_server_error,
    offload_current,
    reset_request,
    set_request,
)

__all__ = ["HybridioMiddleware", "Offloader", "offload", "offloader"]

T = TypeVar("T")
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

logger = logging.getLogger("hybridio.web")


async def offload(fn: Callable[..., T], *args: Any, kind: Kind = "cpu") -> T:
    """Run ``fn(*args)`` as ``kind`` for the current request: admitted, bounded by its deadline.

    ``kind``: ``"inline"``, ``"blocking"`` (a thread) or ``"cpu"`` (a process). Call it from a
    handler of an app wrapped in ``HybridioMiddleware``.

    Raises:
        Rejected: no slot, and the queue cannot serve it in time (the middleware answers 503).
        DeadlineExceeded: the request's deadline passed (the middleware answers 504).
        RuntimeError: not inside a request of such an app.
    """
    return await offload_current(fn, args, kind)


class Offloader:
    """``offload`` as an object, for dependency injection (FastAPI's ``Depends(offloader)``)."""

    async def __call__(self, fn: Callable[..., T], *args: Any, kind: Kind = "cpu") -> T:
        """Same as ``hybridio.web.asgi.offload(fn, *args, kind=kind)``."""
        return await offload_current(fn, args, kind)

    @property
    def time_left(self) -> float:
        """Seconds until the current request's deadline."""
        return current_request().deadline - time.monotonic()


_OFFLOADER = Offloader()


def offloader() -> Offloader:
    """A FastAPI dependency: ``offload: Offloader = Depends(offloader)``.

    Raises:
        RuntimeError: not inside a request of an app wrapped in ``HybridioMiddleware``.
    """
    current_request()
    return _OFFLOADER


class HybridioMiddleware:
    """ASGI middleware: runtime with the lifespan, admission, deadlines, metrics and health.

    Arguments after ``app`` are those of ``hybridio.web.setup``. ``self.hybrid.runtime`` is the
    Runtime; ``hybridio.web.HybridioCollector(middleware.hybrid)`` puts its metrics into a
    ``prometheus_client`` registry.

    Example::

        app = Starlette(routes=routes, middleware=[Middleware(HybridioMiddleware, timeout=10)])
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics_path: str | None = "/metrics",
        health_path: str | None = "/healthz",
        **options: Unpack[HybridOptions],
    ) -> None:
        self.app = app
        self.hybrid = Hybrid(**options)
        self._header = self.hybrid.timeout_header.lower().encode("latin-1")
        self._metrics_path = metrics_path
        self._health_path = health_path
        self._started = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    # -- lifespan -------------------------------------------------------------------------------

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Start the runtime when the server announces start-up (before the app's own start-up
        # code, which may offload), stop it after the app's own shutdown code has run.
        stack = AsyncExitStack()
        seen = False

        async def receive_and_start() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "lifespan.startup":
                seen = True
                await stack.enter_async_context(self.hybrid.running())
                self._started = True
            return message

        async def send_and_stop(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                self._started = False
                await stack.aclose()
            await send(message)

        try:
            await self.app(scope, receive_and_start, send_and_stop)
        except Exception:
            if seen:
                raise
            # The app does not speak lifespan: run hybridio's part of it alone.
            await self._own_lifespan(receive, send)
        finally:
            self._started = False
            await stack.aclose()

    async def _own_lifespan(self, receive: Receive, send: Send) -> None:
        async with AsyncExitStack() as stack:
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    try:
                        await stack.enter_async_context(self.hybrid.running())
                    except Exception as exc:  # noqa: BLE001 - the protocol reports it to the server
                        await send({"type": "lifespan.startup.failed", "message": str(exc)})
                        return
                    self._started = True
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    self._started = False
                    await stack.aclose()
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    # -- requests -------------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if path == self._metrics_path:
            body = self.hybrid.metrics().encode()
            await _respond(send, 200, body, {"content-type": CONTENT_TYPE})
            return
        if path == self._health_path:
            status, health = self.hybrid.health()
            await _json(send, status, health)
            return
        if not self._started:
            await _json(send, 503, {"error": "hybridio is not started: serve the app with "
                                    "lifespan events on (uvicorn --lifespan on)", "status": 503},
                        {"retry-after": "1"})  # fmt: skip
            return
        raw = None
        for name, value in scope["headers"]:
            if name == self._header:
                raw = value.decode("latin-1")
        try:
            timeout = self.hybrid.request_timeout(raw)
        except ValueError as exc:
            await _json(send, 400, {"error": str(exc), "status": 400})
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        token = set_request(self.hybrid.enter(timeout))
        try:
            with (
                anyio.CancelScope(deadline=anyio.current_time() + timeout) as deadline,
                use_runtime(self.hybrid.runtime),
            ):
                await self.app(scope, receive, watch)
            if deadline.cancelled_caught and not started:
                await _answer(send, DeadlineExceeded(timeout), timeout)
        except Exception as exc:
            if started:
                raise
            await self.hybrid.pause(exc)
            if await _answer(send, exc, timeout, scope):
                return
            if not isinstance(exc, TimeoutError):
                raise
            path_ = scope.get("path", "")
            logger.error("Error handling request %s %s", scope.get("method"), path_, exc_info=exc)
            await _json(send, 500, {"error": "internal server error: the handler raised "
                                    "TimeoutError", "status": 500})  # fmt: skip
        finally:
            reset_request(token)


async def _answer(
    send: Send, exc: BaseException, timeout: float, scope: Scope | None = None
) -> bool:
    answer = error_answer(exc, timeout)
    if answer is None:
        return False
    status, message, headers = answer
    if scope is not None:
        log_server_error(scope.get("method", ""), scope.get("path", ""), status, exc)
    await _json(send, status, {"error": message, "status": status},
                {k.lower(): v for k, v in headers.items()})  # fmt: skip
    return True


async def _json(
    send: Send, status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> None:
    await _respond(send, status, json.dumps(body).encode(),
                   {"content-type": "application/json", **(headers or {})})  # fmt: skip


async def _respond(send: Send, status: int, body: bytes, headers: Mapping[str, str]) -> None:
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})

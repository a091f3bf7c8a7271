"""Connection limits of a served app: a cap on open connections, a deadline for the request head.

aiohttp has neither: a client that opens connections and sends its request head a byte at a
time (slowloris) holds each connection for aiohttp's keep-alive timeout (an hour by default), and
enough of them exhaust the process's file descriptors, after which no request is answered (1,100
such connections under the common limit of 1024: 0 of 20 probe requests answered).

``ConnectionGuard`` sits between the listening socket and aiohttp's protocol. It counts open
connections; a connection has ``header_timeout`` seconds from its opening to deliver a complete
request head, else it is closed. At ``max_connections`` a new connection closes the oldest one
that has not delivered a request head yet (the slowloris shape: a real client sends its head at
once), or, when every connection is serving a request or idling between requests, is answered
``503`` and closed. Idle keep-alive connections are bounded by aiohttp's ``keepalive_timeout``,
which ``serve`` sets.
"""

from __future__ import annotations

import asyncio
import json
import resource
from collections.abc import Callable
from typing import Any, cast

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

__all__ = ["ConnectionGuard", "GuardedSite", "default_max_connections"]

#: ``max_connections`` when none is given: this share of the open-file limit, within bounds.
_SHARE_OF_FD_LIMIT = 2
_MIN_DEFAULT = 64
_MAX_DEFAULT = 10_000

_BUSY_BODY = json.dumps({"error": "server busy: too many open connections", "status": 503}).encode()
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: application/json; charset=utf-8\r\n"
    b"Retry-After: 1\r\n"
    b"Connection: close\r\n"
    b"Content-Length: " + str(len(_BUSY_BODY)).encode() + b"\r\n\r\n" + _BUSY_BODY
)


def default_max_connections() -> int:
    """Half the process's open-file limit (soft ``RLIMIT_NOFILE``), between 64 and 10,000.

    512 under the common limit of 1024: the other half stays for the server's own files, worker
    pipes and outgoing connections, so the cap is reached before the process runs out of
    descriptors (when it does, it can accept nothing, not even the connection that would close
    another).
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return _MAX_DEFAULT
    return max(_MIN_DEFAULT, min(_MAX_DEFAULT, soft // _SHARE_OF_FD_LIMIT))


class ConnectionGuard:
    """Caps open connections and bounds the time to a complete request head.

    Counters (also on ``/metrics``): ``open`` connections now; ``refused`` (answered 503 at the
    cap), ``evicted`` (closed at the cap to make room: no request head yet, oldest first) and
    ``timed_out`` (no complete request head within ``header_timeout``) since the start.
    """

    def __init__(self, max_connections: int, header_timeout: float) -> None:
        if not isinstance(max_connections, int) or isinstance(max_connections, bool):
            raise TypeError(f"max_connections must be an int, got {max_connections!r}")
        if max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, got {max_connections}")
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.open = 0
        self.refused = 0
        self.evicted = 0
        self.timed_out = 0
        # Connections still waiting for their first request head, oldest first (a dict keeps
        # insertion order and removes in O(1)).
        self._headless: dict[_Connection, None] = {}
        self._by_handler: dict[RequestHandler, _Connection] = {}

    def protocol_factory(self, server: web.Server) -> Callable[[], asyncio.Protocol]:
        """The protocol factory to listen with: aiohttp's ``server``, behind the guard."""
        make_request = server.request_factory

        def request_factory(
            message: Any, payload: Any, protocol: RequestHandler, writer: Any, task: Any
        ) -> web.BaseRequest:
            # aiohttp calls this once a request head is parsed: the connection is a client's.
            connection = self._by_handler.get(protocol)
            if connection is not None:
                self._headed(connection)
            return make_request(message, payload, protocol, writer, task)

        # Read by each RequestHandler when it is made, so set before the first connection.
        server.request_factory = request_factory
        return lambda: _Connection(self, server())

    def _admit(self, connection: _Connection) -> bool:
        if self.open >= self.max_connections:
            oldest = next(iter(self._headless), None)
            if oldest is None:
                self.refused += 1
                return False
            self.evicted += 1
            oldest.close()
        self.open += 1
        self._headless[connection] = None
        self._by_handler[connection.handler] = connection
        return True

    def _headed(self, connection: _Connection) -> None:
        if connection in self._headless:
            del self._headless[connection]
            connection.cancel_timer()

    def _timed_out(self, connection: _Connection) -> None:
        if connection in self._headless:
            self.timed_out += 1
            connection.close()

    def _forget(self, connection: _Connection) -> None:
        """The connection is closed (or closing): it no longer counts against the cap."""
        if self._by_handler.pop(connection.handler, None) is not None:
            self.open -= 1
        self._headless.pop(connection, None)
        connection.cancel_timer()


class _Connection(asyncio.Protocol):
    """One connection: aiohttp's ``RequestHandler`` behind the guard's checks.

    The transport calls this object; it forwards every call to the handler, which talks to the
    transport directly. A refused connection never reaches the handler.
    """

    __slots__ = ("_forward", "_guard", "_timer", "handler", "transport")

    def __init__(self, guard: ConnectionGuard, handler: RequestHandler) -> None:
        self._guard = guard
        self.handler = handler
        self.transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._forward = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport instances, but have its methods.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        if not self._guard._admit(self):
            transport.write(_BUSY)
            transport.close()
            return
        self._forward = True
        self._timer = asyncio.get_running_loop().call_later(
            self._guard.header_timeout, self._guard._timed_out, self
        )
        self.handler.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._forward:
            self.handler.data_received(data)

    def eof_received(self) -> bool | None:
        # None: the transport closes (aiohttp's handler keeps no half-open connections either).
        if self._forward:
            self.handler.eof_received()
        return None

    def pause_writing(self) -> None:
        if self._forward:
            self.handler.pause_writing()

    def resume_writing(self) -> None:
        if self._forward:
            self.handler.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._guard._forget(self)
        if self._forward:
            self._forward = False
            self.handler.connection_lost(exc)

    def close(self) -> None:
        """Close the connection now; it stops counting against the cap at once."""
        self._guard._forget(self)
        if self.transport is not None:
            self.transport.close()

    def cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class GuardedSite(web.BaseSite):
    """A TCP site whose connections pass through a ``ConnectionGuard``."""

    def __init__(
        self, runner: web.BaseRunner, host: str, port: int, guard: ConnectionGuard
    ) -> None:
        super().__init__(runner)
        self._host = host
        self._port = port
        self._guard = guard
        self._runner_ref = runner

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner_ref.server
        assert server is not None  # BaseSite.__init__ checked it
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._guard.protocol_factory(server), self._host, self._port, reuse_address=True
        )

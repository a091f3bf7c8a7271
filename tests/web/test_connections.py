"""Connections are bounded: a cap on open connections, a deadline for the request head, an idle
timeout between requests. Slow clients (slowloris) cannot starve the others."""

from __future__ import annotations

import asyncio

import aiohttp
import anyio
import pytest
from aiohttp import web
from anyio.abc import SocketStream

import hybridio.web
from hybridio.web._guard import ConnectionGuard, default_max_connections

from ._serving import connect, read_response, read_until_closed, serving

pytestmark = pytest.mark.anyio

PARTIAL_HEAD = b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
FULL_REQUEST = b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


async def _hello(request: web.Request) -> web.Response:
    return web.json_response({"hello": "world"})


def _app() -> web.Application:
    """A plain aiohttp app (serve() bounds any app's connections; no worker processes needed)."""
    app = web.Application()
    app.router.add_get("/hello", _hello)
    return app


async def _probe(session: aiohttp.ClientSession, port: int) -> int:
    async with session.get(f"http://127.0.0.1:{port}/hello") as response:
        await response.read()
        return response.status


async def test_slow_clients_at_the_cap_do_not_starve_other_requests() -> None:
    """40 connections that never finish their head against a cap of 20: 20 probes all answered."""
    app = hybridio.web.create_app(cpu_workers=1)
    app.router.add_get("/hello", _hello)
    async with serving(app, max_connections=20, header_timeout=300) as port:
        guard = app[hybridio.web.HYBRID].connections
        assert isinstance(guard, ConnectionGuard)
        slow: list[SocketStream] = [await connect(port, PARTIAL_HEAD) for _ in range(40)]
        with anyio.fail_after(20):
            while guard.evicted < 20:  # noqa: ASYNC110 - the server accepts them in its own time
                await anyio.sleep(0.01)
        assert guard.open <= 20
        # The oldest were closed to make room (the header timeout is far away).
        for stream in slow[:20]:
            assert await read_until_closed(stream) == b""
        connector = aiohttp.TCPConnector(force_close=True)  # a new connection per probe
        timeout = aiohttp.ClientTimeout(total=20)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            statuses = [await _probe(session, port) for _ in range(20)]
            assert statuses == [200] * 20
            async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                metrics = await response.text()
        assert 'hybridio_web_connections_closed_total{reason="evicted"}' in metrics
        assert "hybridio_web_max_connections 20.0" in metrics
        assert guard.open <= 20
        assert guard.refused == 0
        for stream in slow:
            await stream.aclose()


async def test_a_connection_that_never_completes_its_head_is_closed() -> None:
    async with serving(_app(), header_timeout=0.3) as port:
        slow = await connect(port, PARTIAL_HEAD)
        assert await read_until_closed(slow) == b""
        # A client that sends its head at once is answered as before.
        fast = await connect(port, FULL_REQUEST)
        assert (await read_response(fast)).startswith(b"HTTP/1.1 200")
        await fast.aclose()
        await slow.aclose()


async def test_an_idle_keepalive_connection_is_closed_after_keepalive_timeout() -> None:
    async with serving(_app(), keepalive_timeout=0.3) as port:
        stream = await connect(port, FULL_REQUEST)
        assert (await read_response(stream)).startswith(b"HTTP/1.1 200")
        # aiohttp's own default keeps it for an hour.
        assert await read_until_closed(stream) == b""
        await stream.aclose()


async def test_at_the_cap_with_every_connection_busy_a_new_one_is_answered_503() -> None:
    release = asyncio.Event()
    started = 0

    async def wait(request: web.Request) -> web.Response:
        nonlocal started
        started += 1
        await release.wait()
        return web.json_response({"waited": True})

    app = _app()
    app.router.add_get("/wait", wait)
    async with serving(app, max_connections=3) as port:
        busy = [
            await connect(port, b"GET /wait HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n") for _ in range(3)
        ]
        with anyio.fail_after(20):
            while started < 3:  # noqa: ASYNC110 - counted by the handler
                await anyio.sleep(0.01)
        extra = await connect(port, FULL_REQUEST)
        answer = await read_until_closed(extra)
        # The 503 is sent before the request is read; a reset may overtake it on some stacks.
        assert answer == b"" or answer.startswith(b"HTTP/1.1 503"), answer
        release.set()
        for stream in busy:
            assert (await read_response(stream)).startswith(b"HTTP/1.1 200")
            await stream.aclose()
        await extra.aclose()


async def test_bad_connection_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="max_connections"):
        await hybridio.web.serve(_app(), port=0, max_connections=0, on_ready=None)
    with pytest.raises(TypeError, match="max_connections"):
        await hybridio.web.serve(_app(), port=0, max_connections=2.5, on_ready=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="header_timeout"):
        await hybridio.web.serve(_app(), port=0, header_timeout=0, on_ready=None)
    with pytest.raises(ValueError, match="keepalive_timeout"):
        await hybridio.web.serve(_app(), port=0, keepalive_timeout=-1, on_ready=None)


def test_the_default_cap_is_half_the_open_file_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    import resource

    for soft, expected in ((1024, 512), (100, 64), (10**6, 10_000)):
        monkeypatch.setattr(resource, "getrlimit", lambda _, soft=soft: (soft, soft))
        assert default_max_connections() == expected
    monkeypatch.setattr(
        resource, "getrlimit", lambda _: (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
    )
    assert default_max_connections() == 10_000

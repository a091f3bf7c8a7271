"""Helpers: serve an app with ``hybridio.web.serve`` in the test's loop; raw connections."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
from aiohttp import web
from anyio.abc import SocketStream

from hybridio.web import serve


@asynccontextmanager
async def serving(app: web.Application, **options: Any) -> AsyncIterator[int]:
    """Serve ``app`` on 127.0.0.1 until the block ends; yield the bound port."""
    ports: list[int] = []
    stop = asyncio.Event()  # the web layer runs on asyncio (or uvloop) only
    async with anyio.create_task_group() as tg:
        tg.start_soon(
            lambda: serve(
                app,
                host="127.0.0.1",
                port=0,
                stop=stop,
                handle_signals=False,
                access_log=False,
                on_ready=lambda host, port: ports.append(port),
                **options,
            )
        )
        try:
            with anyio.fail_after(30):
                while not ports:  # noqa: ASYNC110 - on_ready is a plain callback
                    await anyio.sleep(0.01)
            yield ports[0]
        finally:
            stop.set()


async def connect(port: int, data: bytes = b"") -> SocketStream:
    """A new connection to the server, with ``data`` sent."""
    stream = await anyio.connect_tcp("127.0.0.1", port)
    if data:
        await stream.send(data)
    return stream


async def read_until_closed(stream: SocketStream) -> bytes:
    """Everything the server sends until it closes the connection (bounded: fails after 20 s)."""
    chunks: list[bytes] = []
    with anyio.fail_after(20):
        try:
            while True:
                chunks.append(await stream.receive())
        except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionResetError):
            pass
    return b"".join(chunks)


async def read_response(stream: SocketStream) -> bytes:
    """The first bytes of the server's answer (bounded: fails after 20 s)."""
    with anyio.fail_after(20):
        return await stream.receive()


async def until_healthy(status: Callable[[], Awaitable[int]]) -> None:
    """Poll ``status()`` (the /healthz status) until it is 200, within a generous bound.

    On a busy machine the loop's lag comes and goes: /healthz answers 503 while it is high, as it
    should. A test that needs a healthy server waits for one instead of assuming it.
    """
    with anyio.fail_after(30):
        while await status() != 200:  # noqa: ASYNC110 - polling over HTTP
            await anyio.sleep(0.1)


def fd1_echo(value: int) -> int:
    """Write to file descriptor 1 in the worker (as a C library's printf does), then answer."""
    os.write(1, f"noise {value}\n".encode())
    return value

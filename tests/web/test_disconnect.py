"""A request's work and errors: a client that hangs up gives back its slot and its worker, a
crashed worker is a JSON 500 logged in one line, and each request gets its own answer."""

from __future__ import annotations

import json
import logging
import os

import aiohttp
import anyio
import psutil
import pytest
from aiohttp import web

import hybridio.web
from hybridio.web import ADMISSION, RUNTIME, Limit, offload
from hybridio.web._work import sleep_ms

from ._serving import connect, fd1_echo, serving

pytestmark = pytest.mark.anyio

HOUR_MS = 3_600_000


async def _sleep(request: web.Request) -> web.Response:
    """An hour of work in a worker process: only a cancellation ends it within the test."""
    return web.json_response(await offload(request, sleep_ms, HOUR_MS, kind="cpu"))


async def _pid(request: web.Request) -> web.Response:
    return web.json_response(await offload(request, os.getpid, kind="cpu"))


async def _crash(request: web.Request) -> web.Response:
    return web.json_response(await offload(request, os._exit, 3, kind="cpu"))


async def _echo(request: web.Request) -> web.Response:
    value = int(request.query["n"])
    return web.json_response({"n": value, "got": await offload(request, fd1_echo, value)})


def _app(in_flight: int = 2) -> web.Application:
    # No deadline in reach (5 min): only the disconnect can free the slots. The cpu gate has
    # no queue, so while slots are held a new request is refused (503).
    app = hybridio.web.create_app(
        cpu_workers=1,
        threads=2,
        timeout=300.0,
        limits={"cpu": Limit(in_flight=in_flight, queue=0, pause=0.0)},
    )
    app.router.add_get("/sleep", _sleep)
    app.router.add_get("/pid", _pid)
    app.router.add_get("/crash", _crash)
    app.router.add_get("/echo", _echo)
    return app


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def test_clients_that_hang_up_give_back_their_slots_and_their_worker() -> None:
    app = _app(in_flight=2)
    gate = app[ADMISSION].gate("cpu")
    async with serving(app) as port:
        runtime = app[RUNTIME]
        workers = runtime.worker_pids()
        assert workers
        clients = [
            await connect(port, b"GET /sleep HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n") for _ in range(2)
        ]
        with anyio.fail_after(20):
            while gate.in_flight < 2:  # noqa: ASYNC110 - the gate's own counter
                await anyio.sleep(0.01)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/pid") as response:
                assert response.status == 503  # every slot is held
            refused = gate.rejected
            for client in clients:
                await client.aclose()  # the clients hang up
            # Without cancellation the slots are held for the hour the work takes.
            with anyio.fail_after(30):
                while gate.in_flight:  # noqa: ASYNC110 - the gate's own counter
                    await anyio.sleep(0.01)
            stats = runtime.stats()["cpu"]
            assert stats.cancelled == 2
            # The process running the hour of work was killed, not left to finish it.
            with anyio.fail_after(20):
                while any(_alive(pid) for pid in workers):  # noqa: ASYNC110
                    await anyio.sleep(0.05)
            async with session.get(f"http://127.0.0.1:{port}/pid") as response:
                assert response.status == 200
                assert await response.json() not in workers  # a fresh worker
            assert gate.rejected == refused


async def test_a_crashed_worker_is_a_json_500_logged_in_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = _app()
    async with serving(app) as port, aiohttp.ClientSession() as session:
        with caplog.at_level(logging.INFO):
            async with session.get(f"http://127.0.0.1:{port}/crash") as response:
                assert response.status == 500
                assert response.content_type == "application/json"
                body = await response.json()
        assert body["status"] == 500
        assert "worker process" in body["error"]
        assert "Traceback" not in json.dumps(body)
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1, [r.getMessage() for r in errors]
        assert errors[0].name == "hybridio.web"
        assert errors[0].exc_info is None  # one line, not a traceback per request
        assert "WorkerCrashed" in errors[0].getMessage()
        assert "\n" not in errors[0].getMessage()
        # The pool replaced the worker: the next request is served.
        async with session.get(f"http://127.0.0.1:{port}/pid") as response:
            assert response.status == 200


async def test_concurrent_requests_each_get_their_own_answer_while_workers_write_to_fd_1() -> None:
    app = _app(in_flight=64)
    async with serving(app) as port, aiohttp.ClientSession() as session:
        answers: dict[int, tuple[int, object]] = {}

        async def ask(n: int) -> None:
            async with session.get(f"http://127.0.0.1:{port}/echo", params={"n": n}) as response:
                answers[n] = (response.status, await response.json())

        with anyio.fail_after(45):
            async with anyio.create_task_group() as tg:
                for n in range(50):
                    tg.start_soon(ask, n)
        assert answers == {n: (200, {"n": n, "got": n}) for n in range(50)}

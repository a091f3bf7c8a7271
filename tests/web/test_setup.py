"""``hybridio.web.setup`` on an existing aiohttp app, error answers, access logs, the collector."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anyio
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry, generate_latest

import hybridio.web
from hybridio.web import HYBRID, Limit, Rejected
from hybridio.web._admission import Gate
from hybridio.web._work import sleep_ms, spin

from ._serving import until_healthy

pytestmark = pytest.mark.anyio

Client = TestClient[Any, Any]


async def crunch(request: web.Request) -> web.Response:
    return web.json_response(await hybridio.web.offload(request, spin, int(request.query["n"])))


async def own_timeout(request: web.Request) -> web.Response:
    # The handler's own timeout (a slow database, say): not the request's deadline.
    async with asyncio.timeout(0.01):
        await asyncio.sleep(1)
    return web.json_response("unreachable")


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(5)
    return web.json_response("unreachable")


async def block_inline(request: web.Request) -> web.Response:
    return web.json_response(await hybridio.web.offload(request, sleep_ms, 300, kind="inline"))


@web.middleware
async def tag(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    response.headers["X-Existing"] = "kept"
    return response


def existing_app() -> web.Application:
    """An app as users have them before hybridio: its own routes and middleware."""
    app = web.Application(middlewares=[tag])
    app.router.add_get("/crunch", crunch)
    app.router.add_get("/own-timeout", own_timeout)
    app.router.add_get("/slow", slow)
    app.router.add_get("/inline", block_inline)
    return app


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    app = hybridio.web.setup(
        existing_app(), cpu_workers=1, threads=2, limits={"inline": Limit(1, 1)}
    )
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        yield client


async def test_setup_adds_runtime_routes_and_keeps_the_apps_own(client: Client) -> None:
    hybrid = client.app[HYBRID]
    assert hybrid.runtime.worker_pids()  # started (and warmed up) with the app
    response = await client.get("/crunch", params={"n": "1000"})
    assert response.status == 200
    assert await response.json() == spin(1000)
    assert response.headers["X-Existing"] == "kept"
    assert hybrid.runtime.stats()["cpu"].completed >= 1
    metrics = await client.get("/metrics")
    assert metrics.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert 'hybridio_web_admitted_total{kind="cpu"} 1.0' in await metrics.text()

    async def health() -> int:
        response = await client.get("/healthz")
        await response.read()
        return response.status

    await until_healthy(health)  # the route is there; a busy machine's loop lag comes and goes


async def test_setup_stops_the_runtime_with_the_app() -> None:
    app = hybridio.web.setup(existing_app(), cpu_workers=1)
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        assert (await client.get("/crunch", params={"n": "10"})).status == 200
        runtime = app[HYBRID].runtime
    assert runtime.closed
    assert runtime.worker_pids() == []


async def test_a_handlers_own_timeout_is_a_logged_500_not_a_504(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="hybridio.web"):
        response = await client.get("/own-timeout")
    assert response.status == 500
    assert "TimeoutError" in (await response.json())["error"]
    (record,) = [r for r in caplog.records if r.name == "hybridio.web"]
    assert "GET /own-timeout" in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], TimeoutError)
    assert "own_timeout" in caplog.text  # the original traceback, not a deadline message


async def test_hybridios_own_deadline_is_a_504(client: Client) -> None:
    response = await client.get("/slow", headers={"X-Request-Timeout": "0.2"})
    assert response.status == 504
    assert "request deadline of 0.2 s exceeded" in (await response.json())["error"]


async def test_inline_work_counts_against_a_limit_that_rejects(client: Client) -> None:
    # Inline work blocks the loop; requests that arrive meanwhile reach the gate together
    # when it is free again, and those past one running + one queued are refused.
    statuses: list[int] = []

    async def get() -> None:
        statuses.append((await client.get("/inline")).status)

    async with anyio.create_task_group() as tg:
        for _ in range(6):
            tg.start_soon(get)
    assert 503 in statuses
    assert 200 in statuses
    assert set(statuses) <= {200, 503}
    assert client.app[HYBRID].admission.gate("inline").rejected >= 1


async def test_collector_puts_the_metrics_into_the_users_registry(client: Client) -> None:
    await client.get("/crunch", params={"n": "10"})
    registry = CollectorRegistry()
    registry.register(hybridio.web.HybridioCollector(client.app[HYBRID]))
    text = generate_latest(registry).decode()
    assert 'hybridio_completed_total{kind="cpu"}' in text
    assert 'hybridio_web_admitted_total{kind="cpu"} 1.0' in text
    assert "hybridio_loop_current_lag_seconds" in text


@pytest.mark.parametrize("access_log", [True, False])
async def test_access_log_is_on_by_default_and_can_be_turned_off(
    access_log: bool, caplog: pytest.LogCaptureFixture
) -> None:
    app = hybridio.web.setup(existing_app(), cpu_workers=1)
    stop = asyncio.Event()
    ports: list[int] = []
    with caplog.at_level(logging.INFO, logger="aiohttp.access"):
        async with anyio.create_task_group() as tg:
            tg.start_soon(
                lambda: hybridio.web.serve(
                    app,
                    port=0,
                    stop=stop,
                    handle_signals=False,
                    on_ready=lambda host, port: ports.append(port),
                    access_log=access_log,
                )
            )
            with anyio.fail_after(30):
                while not ports:  # noqa: ASYNC110
                    await anyio.sleep(0.01)
            url = f"http://127.0.0.1:{ports[0]}/crunch?n=5"
            async with aiohttp.ClientSession() as session, session.get(url) as response:
                assert response.status == 200
            stop.set()
    lines = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    if access_log:
        assert any('"GET /crunch?n=5 HTTP/1.1" 200' in line for line in lines), lines
    else:
        assert lines == []


# -- the admission gate alone -----------------------------------------------------------------


async def test_gate_queues_what_the_deadline_allows_and_refuses_the_rest() -> None:
    gate = Gate("cpu", Limit(1, 10))
    gate.service_time = 1.0  # as if measured
    held = anyio.Event()
    release = anyio.Event()

    async def hold() -> None:
        async with gate.admit():
            held.set()
            await release.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(hold)
        await held.wait()
        # One slot, busy for about a second: a request due in 0.5 s cannot be served in time.
        with pytest.raises(Rejected, match="past this request's deadline") as refused:
            async with gate.admit(deadline=time.monotonic() + 0.5):
                pass
        assert refused.value.retry_after == 1.0  # nobody waits: the slot's own estimate
        assert gate.waiting == 0
        # One due in 5 s can: it waits for the slot.
        waited = anyio.Event()

        async def patient() -> None:
            async with gate.admit(deadline=time.monotonic() + 5):
                waited.set()

        tg.start_soon(patient)
        with anyio.fail_after(5):
            while gate.waiting != 1:  # noqa: ASYNC110
                await anyio.sleep(0.01)
        release.set()
        await waited.wait()
    assert gate.rejected == 1
    assert gate.admitted == 2


async def test_gate_before_any_measurement_queues_one_round_only() -> None:
    gate = Gate("cpu", Limit(2, 100))
    release = anyio.Event()
    entered: list[int] = []

    async def hold(n: int) -> None:
        async with gate.admit(deadline=time.monotonic() + 30):
            entered.append(n)
            await release.wait()

    async with anyio.create_task_group() as tg:
        for n in range(4):  # two run, two wait
            tg.start_soon(hold, n)
        with anyio.fail_after(5):
            while gate.waiting != 2:  # noqa: ASYNC110
                await anyio.sleep(0.01)
        with pytest.raises(Rejected, match="no service time measured yet"):
            async with gate.admit(deadline=time.monotonic() + 30):
                pass
        release.set()
    assert sorted(entered) == [0, 1, 2, 3]
    assert gate.service_time > 0


async def test_refusals_are_held_for_the_pause() -> None:
    app = hybridio.web.setup(existing_app(), cpu_workers=1, limits={"cpu": Limit(1, 0, pause=0.3)})
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        gate = app[HYBRID].admission.gate("cpu")

        async def busy() -> None:
            await client.get(
                "/crunch", params={"n": str(10**10)}, headers={"X-Request-Timeout": "3"}
            )

        async with anyio.create_task_group() as tg:
            tg.start_soon(busy)
            with anyio.fail_after(10):
                while gate.in_flight != 1:  # noqa: ASYNC110
                    await anyio.sleep(0.01)
            start = time.monotonic()
            refused = await client.get("/crunch", params={"n": "1"})
            assert refused.status == 503
            assert time.monotonic() - start >= 0.3
            assert refused.headers["Retry-After"] == "1"
            tg.cancel_scope.cancel()


async def sleep_in_process(request: web.Request) -> web.Response:
    return web.json_response(await hybridio.web.offload(request, sleep_ms, 500, kind="cpu"))


async def test_a_process_call_overrunning_its_deadline_a_little_is_not_killed() -> None:
    app = existing_app()
    app.router.add_get("/sleep", sleep_in_process)
    hybridio.web.setup(app, cpu_workers=1)
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        hybrid = app[HYBRID]
        (pid,) = hybrid.runtime.worker_pids()
        # As if a typical cpu request took a second: the grace past the deadline is a second.
        hybrid.admission.gate("cpu").service_time = 1.0
        response = await client.get("/sleep", headers={"X-Request-Timeout": "0.2"})
        assert response.status == 504  # the deadline is still the deadline
        stats = hybrid.runtime.stats()["cpu"]
        assert stats.completed >= 2  # the warm-up call and this one, finished in the grace
        assert stats.timeouts == 0
        assert hybrid.runtime.worker_pids() == [pid]  # not killed

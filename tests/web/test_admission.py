"""Admission control (503 + Retry-After at once), deadlines (504, worker killed), health, metrics."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

import hybridio
from hybridio.web import ADMISSION, RUNTIME, Limit, create_app, create_demo_app, offload_route
from hybridio.web._work import spin

from ._serving import until_healthy

pytestmark = pytest.mark.anyio

Client = TestClient[Any, Any]


async def _client(app: web.Application) -> TestClient[Any, Any]:
    client: Client = TestClient(TestServer(app, host="127.0.0.1", port=0))
    await client.start_server()
    return client


@pytest.fixture
async def tight() -> AsyncIterator[Client]:
    """One worker process, one CPU request in flight and one queued: the third is refused."""
    app = create_demo_app(cpu_workers=1, threads=2, limits={"cpu": Limit(1, 1, retry_after=2.5)})
    client = await _client(app)
    try:
        yield client
    finally:
        await client.close()


async def test_full_queue_gets_503_with_retry_after_at_once_while_io_answers(
    tight: Client,
) -> None:
    gate = tight.app[ADMISSION].gate("cpu")
    statuses: list[int] = []

    async def slow() -> None:
        response = await tight.get("/cpu", params={"ms": "400", "mode": "process"})
        statuses.append(response.status)

    async with anyio.create_task_group() as tg:
        tg.start_soon(slow)
        tg.start_soon(slow)
        with anyio.fail_after(10):
            while not (gate.in_flight == 1 and gate.waiting == 1):  # noqa: ASYNC110
                await anyio.sleep(0.01)
        refused = await tight.get("/cpu", params={"ms": "400", "mode": "process"})
        assert refused.status == 503
        assert refused.headers["Retry-After"] == "3"
        assert "server busy" in (await refused.json())["error"]
        io = await tight.get("/io", params={"ms": "1"})
        assert io.status == 200
        # Still refusing while the two admitted requests hold the slot and the queue.
        assert gate.in_flight == 1
    assert statuses == [200, 200]
    assert gate.rejected == 1
    assert (await tight.get("/cpu", params={"ms": "1"})).status == 200


async def test_deadline_gives_504_and_kills_the_worker(tight: Client) -> None:
    runtime = tight.app[RUNTIME]
    assert (await tight.get("/cpu", params={"ms": "1"})).status == 200  # worker started
    (old_pid,) = runtime.worker_pids()
    response = await tight.get(
        "/cpu", params={"ms": "8000", "mode": "process"}, headers={"X-Request-Timeout": "0.3"}
    )
    assert response.status == 504
    assert "deadline of 0.3 s exceeded" in (await response.json())["error"]
    assert old_pid not in runtime.worker_pids()
    with pytest.raises(ProcessLookupError):
        os.kill(old_pid, 0)  # killed and reaped, not a zombie
    assert runtime.stats()["cpu"].timeouts == 1  # the deadline, plus a short grace
    assert (await tight.get("/cpu", params={"ms": "1"})).status == 200  # a fresh worker


async def test_route_options_admit_plain_core_calls_and_bound_them() -> None:
    @offload_route(kind="cpu", timeout=0.3)
    async def crunch(request: web.Request) -> web.Response:
        # A plain core call in a handler uses the app's runtime and the route's deadline.
        return web.json_response(await hybridio.run_cpu(spin, int(request.query["n"])))

    app = create_app(cpu_workers=1, limits={"cpu": Limit(1, 0)})
    app.router.add_get("/crunch", crunch)
    client = await _client(app)
    try:
        runtime = app[RUNTIME]
        before = runtime.stats()["cpu"].completed
        assert await (await client.get("/crunch", params={"n": "1000"})).json() == spin(1000)
        assert runtime.stats()["cpu"].completed == before + 1
        slow = await client.get("/crunch", params={"n": str(10**10)})
        assert slow.status == 504
        assert app[ADMISSION].gate("cpu").admitted == 2
    finally:
        await client.close()


async def test_metrics_parse_as_prometheus_text(tight: Client) -> None:
    await tight.get("/cpu", params={"ms": "1", "mode": "process"})
    response = await tight.get("/metrics")
    assert response.status == 200
    assert response.content_type == "text/plain"
    families = {f.name: f for f in text_string_to_metric_families(await response.text())}
    completed = {s.labels["kind"]: s.value for s in families["hybridio_completed"].samples}
    assert completed["cpu"] >= 1
    admitted = {s.labels["kind"]: s.value for s in families["hybridio_web_admitted"].samples}
    assert admitted["cpu"] == 1
    assert {"hybridio_web_rejected", "hybridio_loop_current_lag_seconds"} <= set(families)


async def test_healthz_turns_503_when_the_loop_was_blocked() -> None:
    async def block(request: web.Request) -> web.Response:
        time.sleep(0.3)  # noqa: ASYNC251 - the mistake the health check must reveal
        return web.json_response("done")

    app = create_app(cpu_workers=1, max_lag=0.1)
    app.router.add_get("/block", block)
    client = await _client(app)
    try:
        await until_healthy(lambda: _status(client, "/healthz"))
        assert (await client.get("/block")).status == 200
        response = await client.get("/healthz")
        assert response.status == 503
        body = await response.json()
        assert body["status"] == "unhealthy"
        assert body["loop_lag"] > 0.1
    finally:
        await client.close()


async def _status(client: TestClient[Any, Any], path: str) -> int:
    response = await client.get(path)
    await response.read()
    return response.status


def test_bad_configuration_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="in_flight must be >= 1"):
        Limit(0)
    with pytest.raises(ValueError, match="queue must be an int >= 0"):
        Limit(1, -1)
    with pytest.raises(ValueError, match="limits: kind must be one of"):
        create_app(limits={"gpu": Limit(1)})
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        create_app(timeout=0)
    with pytest.raises(ValueError, match="kind must be one of"):
        offload_route(kind="gpu")  # type: ignore[arg-type]

"""``HybridioMiddleware`` on a real Starlette app: lifespan, admission, deadlines, errors, metrics.

Through httpx's ASGI transport on every anyio backend (the ASGI middleware needs no asyncio),
with the lifespan driven as a server drives it; and once behind a real uvicorn on 127.0.0.1.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import uvicorn
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import hybridio
from hybridio.web import Limit
from hybridio.web._work import sleep_ms, spin
from hybridio.web.asgi import HybridioMiddleware, Offloader, offload, offloader

from ._serving import until_healthy

pytestmark = pytest.mark.anyio


@pytest.fixture(
    params=[
        pytest.param(("asyncio", {}), id="asyncio"),
        pytest.param(("asyncio", {"use_uvloop": True}), id="asyncio+uvloop"),
        pytest.param(("trio", {}), id="trio"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    return request.param


async def crunch(request: Request) -> JSONResponse:
    return JSONResponse(await offload(spin, int(request.query_params["n"])))


async def blocking(request: Request) -> JSONResponse:
    # The FastAPI way: the offloader comes as a dependency (Depends(offloader)).
    run: Offloader = offloader()
    return JSONResponse({"slept": await run(sleep_ms, 5, kind="blocking"), "left": run.time_left})


async def plain(request: Request) -> JSONResponse:
    # A plain core call uses the app's runtime.
    return JSONResponse(await hybridio.run_cpu(spin, 100))


async def own_timeout(request: Request) -> JSONResponse:
    with anyio.fail_after(0.01):
        await anyio.sleep(1)
    return JSONResponse("unreachable")


async def slow(request: Request) -> JSONResponse:
    await anyio.sleep(5)
    return JSONResponse("unreachable")


async def busy(request: Request) -> JSONResponse:
    return JSONResponse(await offload(spin, 10**10))


async def crash(request: Request) -> JSONResponse:
    return JSONResponse(await offload(os._exit, 3))


started: list[str] = []


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    # The app's own start-up code can already offload: the runtime starts first.
    started.append(str(await offload_at_startup()))
    yield


async def offload_at_startup() -> int:
    return await hybridio.run_cpu(spin, 10)


def make_app(**options: Any) -> Starlette:
    routes = [
        Route("/crunch", crunch),
        Route("/blocking", blocking),
        Route("/plain", plain),
        Route("/own-timeout", own_timeout),
        Route("/slow", slow),
        Route("/busy", busy),
        Route("/crash", crash),
    ]
    options.setdefault("cpu_workers", 1)
    options.setdefault("threads", 2)
    middleware = [Middleware(HybridioMiddleware, **options)]
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)


@asynccontextmanager
async def running(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """Drive the app's lifespan as a server does, and give an httpx client for it."""
    to_app, app_receives = anyio.create_memory_object_stream[dict[str, Any]](4)
    app_sends, from_app = anyio.create_memory_object_stream[dict[str, Any]](4)
    async with to_app, app_receives, app_sends, from_app, anyio.create_task_group() as tg:
        tg.start_soon(app, {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
                      app_receives.receive, app_sends.send)  # fmt: skip
        await to_app.send({"type": "lifespan.startup"})
        with anyio.fail_after(30):
            assert (await from_app.receive())["type"] == "lifespan.startup.complete"
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client
        await to_app.send({"type": "lifespan.shutdown"})
        with anyio.fail_after(30):
            assert (await from_app.receive())["type"] == "lifespan.shutdown.complete"


def middleware_of(app: Starlette) -> HybridioMiddleware:
    layer: Any = app.middleware_stack
    while not isinstance(layer, HybridioMiddleware):
        layer = layer.app
    return layer


async def test_offload_admission_metrics_and_lifespan() -> None:
    app = make_app()
    async with running(app) as client:
        hybrid = middleware_of(app).hybrid
        assert hybrid.runtime.worker_pids()
        assert started[-1] == str(spin(10))
        response = await client.get("/crunch", params={"n": "1000"})
        assert response.status_code == 200
        assert response.json() == spin(1000)
        body = (await client.get("/blocking")).json()
        assert body["slept"] == 5
        assert 0 < body["left"] <= 30
        assert (await client.get("/plain")).json() == spin(100)
        assert hybrid.runtime.stats()["cpu"].completed >= 3
        metrics = await client.get("/metrics")
        assert metrics.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        families = {f.name: f for f in text_string_to_metric_families(metrics.text)}
        admitted = {s.labels["kind"]: s.value for s in families["hybridio_web_admitted"].samples}
        assert admitted == {
            "cpu": 1.0,
            "blocking": 1.0,
            "inline": 0.0,
            "interpreter": 0.0,
            "auto": 0.0,
        }

        async def status() -> int:
            return (await client.get("/healthz")).status_code

        await until_healthy(status)  # a busy machine's loop lag comes and goes
        health = await client.get("/healthz")
        assert health.json()["status"] in {"ok", "unhealthy"}
        assert set(health.json()) == {"status", "loop_lag", "max_loop_lag"}
    assert hybrid.runtime.closed
    assert hybrid.runtime.worker_pids() == []


async def test_deadline_504_handler_timeout_500_and_full_queue_503(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_app(limits={"cpu": Limit(1, 0)})
    async with running(app) as client:
        late = await client.get("/slow", headers={"X-Request-Timeout": "0.2"})
        assert late.status_code == 504
        assert "request deadline of 0.2 s exceeded" in late.json()["error"]
        with caplog.at_level(logging.ERROR, logger="hybridio.web"):
            own = await client.get("/own-timeout")
        assert own.status_code == 500
        (record,) = [r for r in caplog.records if r.name == "hybridio.web"]
        assert record.exc_info is not None
        assert isinstance(record.exc_info[1], TimeoutError)
        assert (await client.get("/crunch", headers={"X-Request-Timeout": "x"})).status_code == 400
        gate = middleware_of(app).hybrid.admission.gate("cpu")
        async with anyio.create_task_group() as tg:
            tg.start_soon(partial(client.get, "/busy", headers={"X-Request-Timeout": "2"}))
            with anyio.fail_after(10):
                while gate.in_flight != 1:  # noqa: ASYNC110
                    await anyio.sleep(0.01)
            refused = await client.get("/crunch", params={"n": "1"})
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "1"
            assert "server busy" in refused.json()["error"]
            tg.cancel_scope.cancel()


async def test_without_lifespan_requests_are_refused_clearly() -> None:
    app = make_app()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/crunch", params={"n": "1"})
    assert response.status_code == 503
    assert "lifespan" in response.json()["error"]


# uvicorn serves on asyncio only; trio is covered above through the ASGI transport.
@pytest.mark.parametrize("anyio_backend", [("asyncio", {"use_uvloop": True})], ids=["uvloop"])
async def test_behind_a_real_uvicorn_on_loopback() -> None:
    config = uvicorn.Config(make_app(), host="127.0.0.1", port=0, lifespan="on", log_level="error")
    server = uvicorn.Server(config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        with anyio.fail_after(30):
            while not server.started:  # noqa: ASYNC110
                await anyio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        start = time.monotonic()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            response = await client.get("/crunch", params={"n": "1000"})
            assert response.status_code == 200
            assert response.json() == spin(1000)
            late = await client.get("/slow", headers={"X-Request-Timeout": "0.2"})
            assert late.status_code == 504
        assert time.monotonic() - start < 30
        server.should_exit = True


async def test_the_starlette_example() -> None:
    examples = str(Path(__file__).parents[2] / "examples")
    sys.path.insert(0, examples)  # as a worker process will import it, by name
    try:
        # examples/service_starlette.py, imported from its directory
        import service_starlette  # type: ignore[import-not-found]

        app = service_starlette.make_app(cpu_workers=1)
        async with running(app) as client:
            primes = await client.get("/primes", params={"below": "1000"})
            assert primes.json() == {"below": 1000, "primes": 168}
            digest = await client.get("/digest", params={"mb": "1"})
            assert digest.json()["sha256"] == service_starlette.digest(2**20)
            late = await client.get(
                "/primes", params={"below": str(10**8)}, headers={"X-Request-Timeout": "0.1"}
            )
            assert late.status_code == 504
            stats = middleware_of(app).hybrid.runtime.stats()
            assert stats["blocking"].completed == 1
            assert stats["cpu"].timeouts == 1  # the deadline, plus a short grace
    finally:
        sys.path.remove(examples)


async def test_a_crashed_worker_is_a_json_500_logged_in_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with running(make_app()) as client:
        with caplog.at_level(logging.INFO):
            response = await client.get("/crash")
        assert response.status_code == 500
        assert response.json() == {
            "error": "internal server error: the worker process running this request crashed",
            "status": 500,
        }
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1, [r.getMessage() for r in errors]
        assert errors[0].exc_info is None
        assert "GET /crash answered 500: WorkerCrashed: worker process" in errors[0].getMessage()
        assert (await client.get("/crunch", params={"n": "10"})).status_code == 200

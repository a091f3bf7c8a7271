"""The demo server's ``mode=auto`` on /cpu and /hash (aiohttp: asyncio and uvloop only)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from hybridio.web import RUNTIME, create_demo_app
from hybridio.web._work import spin

pytestmark = pytest.mark.anyio


@pytest.fixture(
    params=[
        pytest.param(("asyncio", {}), id="asyncio"),
        pytest.param(("asyncio", {"use_uvloop": True}), id="asyncio+uvloop"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    return request.param


@pytest.fixture
async def demo() -> AsyncIterator[TestClient[Any, Any]]:
    app = create_demo_app(cpu_workers=1, threads=2)
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        yield client


async def test_cpu_and_hash_in_auto_mode(demo: TestClient[Any, Any]) -> None:
    runtime = demo.app[RUNTIME]
    for _ in range(2):
        response = await demo.get("/cpu", params={"ms": "2", "mode": "auto"})
        assert response.status == 200, await response.text()
        body = await response.json()
        assert body["mode"] == "auto"
        assert body["result"] == spin(body["loops"])
        response = await demo.get("/hash", params={"mb": "1", "mode": "auto"})
        assert response.status == 200, await response.text()
        assert (await response.json())["result"] == hashlib.sha256(bytes(2**20)).hexdigest()
    decisions = runtime.stats().auto
    assert any(name.endswith(".spin") for name in decisions), decisions
    assert any(name.endswith("hash_buffer") for name in decisions), decisions
    assert all(d.probes >= 1 and d.reason for d in decisions.values())

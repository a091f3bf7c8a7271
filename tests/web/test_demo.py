"""The demo server's endpoints, in every mode, and its answers to bad parameters."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hybridio.web import RUNTIME
from hybridio.web._work import spin

from ._serving import until_healthy

pytestmark = pytest.mark.anyio

Client = TestClient[Any, Any]


async def test_io(demo: Client) -> None:
    response = await demo.get("/io", params={"ms": "2"})
    assert response.status == 200
    assert (await response.json())["result"] == 2.0


@pytest.mark.parametrize("mode", ["inline", "thread"])
async def test_blocking(demo: Client, mode: str) -> None:
    response = await demo.get("/blocking", params={"ms": "3", "mode": mode})
    assert response.status == 200
    assert await response.json() == {"endpoint": "blocking", "mode": mode, "result": 3.0, "ms": 3.0}


async def test_cpu_every_mode_runs_where_it_says(demo: Client) -> None:
    runtime = demo.app[RUNTIME]
    for mode, kind in (("inline", "inline"), ("thread", "blocking"), ("process", "cpu")):
        before = runtime.stats()[kind].completed
        response = await demo.get("/cpu", params={"ms": "2", "mode": mode})
        assert response.status == 200, await response.text()
        body = await response.json()
        assert body["mode"] == mode
        assert body["loops"] > 0
        assert body["result"] == spin(body["loops"])
        assert runtime.stats()[kind].completed == before + 1


async def test_hash_every_mode(demo: Client) -> None:
    expected = hashlib.sha256(bytes(2**20)).hexdigest()
    for mode in ("inline", "thread", "process"):
        response = await demo.get("/hash", params={"mb": "1", "mode": mode})
        assert response.status == 200, await response.text()
        assert (await response.json())["result"] == expected


async def test_healthz_ok(demo: Client) -> None:
    async def status() -> int:
        response = await demo.get("/healthz")
        await response.read()
        return response.status

    await until_healthy(status)  # a busy machine's loop lag comes and goes
    response = await demo.get("/healthz")
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "ok"
    assert body["loop_lag"] >= 0


@pytest.mark.parametrize(
    ("path", "params", "expected"),
    [
        ("/io", {"ms": "abc"}, "ms must be a number"),
        ("/io", {"ms": "-1"}, "ms must be a number"),
        ("/io", {"ms": "nan"}, "ms must be a number"),
        ("/cpu", {"ms": "1e9"}, "between 0 and 10000"),
        ("/cpu", {"mode": "gpu"}, "mode must be one of inline, thread, process"),
        ("/blocking", {"mode": "process"}, "mode must be one of inline, thread"),
        ("/hash", {"mb": "100000"}, "mb must be a number between 0 and 64"),
        ("/hash", {"mb": "inf"}, "mb must be a number"),
    ],
)
async def test_bad_parameters_get_400_with_a_message(
    demo: Client, path: str, params: dict[str, str], expected: str
) -> None:
    response = await demo.get(path, params=params)
    assert response.status == 400
    assert expected in await response.text()


@pytest.mark.parametrize("value", ["soon", "0", "-3", "1e9", "nan"])
async def test_bad_timeout_header_gets_400(demo: Client, value: str) -> None:
    response = await demo.get("/io", headers={"X-Request-Timeout": value})
    assert response.status == 400
    assert "X-Request-Timeout must be a number of seconds" in await response.text()

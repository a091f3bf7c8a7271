"""hybridio.web serves with aiohttp, which runs only on asyncio: test on asyncio and uvloop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from hybridio.web import create_demo_app

BACKENDS = [
    pytest.param(("asyncio", {}), id="asyncio"),
    pytest.param(("asyncio", {"use_uvloop": True}), id="asyncio+uvloop"),
]


# Module scope: one demo server (and its worker process) per module and backend.
@pytest.fixture(params=BACKENDS, scope="module")
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    return request.param


@pytest.fixture(scope="module")
async def demo() -> AsyncIterator[TestClient[Any, Any]]:
    """A real demo server on an ephemeral loopback port, with one worker process."""
    app = create_demo_app(cpu_workers=1, threads=2)
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        yield client

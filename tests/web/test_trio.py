"""Under trio the web layer refuses with a message that says why, instead of failing obscurely."""

from __future__ import annotations

import pytest

from hybridio.web import AsyncioRequired, create_app, serve

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "trio"


async def test_serve_under_trio_refuses_clearly() -> None:
    app = create_app(cpu_workers=1)
    with pytest.raises(AsyncioRequired, match=r"aiohttp, which runs only on an asyncio"):
        await serve(app, port=0, on_ready=None)

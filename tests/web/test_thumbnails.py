"""The example service (examples/thumbnails): before and after hybridio, same answers."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image

import hybridio.web

pytestmark = pytest.mark.anyio

EXAMPLE = Path(__file__).parents[2] / "examples" / "thumbnails"


@pytest.fixture(scope="module")
def service() -> Iterator[ModuleType]:
    # Imported by name from its folder, as a worker process will import it to run render().
    sys.path.insert(0, str(EXAMPLE))
    try:
        import thumbnail_service  # type: ignore[import-not-found]  # on sys.path in the test

        yield thumbnail_service
    finally:
        sys.path.remove(str(EXAMPLE))


async def _answers(app: Any) -> tuple[bytes, str, int]:
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        thumb = await client.get("/thumbnail", params={"id": "1", "size": "64"})
        assert thumb.status == 200
        assert thumb.content_type == "image/png"
        doc = await client.get("/doc", params={"id": "2"})
        assert doc.status == 200
        missing = await client.get("/doc", params={"id": "99"})
        return await thumb.read(), await doc.text(), missing.status


async def test_the_service_answers_the_same_before_and_after(service: ModuleType) -> None:
    before = await _answers(service.existing_app())
    after_app = service.hybrid_app(cpu_workers=1, threads=2)
    after = await _answers(after_app)
    # Same documents, same thumbnail sizes (the photos are noise, new for each app).
    assert after[1:] == before[1:]
    for png in (before[0], after[0]):
        with Image.open(io.BytesIO(png)) as image:
            assert image.size == (64, 48)
    assert after[1].startswith("<h1>Document 2</h1>")
    assert after[2] == 404


async def test_after_the_work_runs_where_it_belongs(service: ModuleType) -> None:
    app = service.hybrid_app(cpu_workers=1, threads=2)
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        runtime = app[hybridio.web.HYBRID].runtime
        await client.get("/thumbnail", params={"id": "0"})
        await client.get("/doc", params={"id": "0"})
        stats = runtime.stats()
        assert stats["blocking"].completed == 1  # Pillow: a thread
        assert stats["cpu"].completed >= 2  # Markdown: a process (after the warm-up call)
        assert stats["inline"].completed == 0
        assert (await client.get("/metrics")).status == 200
        assert (await client.get("/healthz")).status == 200


def test_the_load_test_compares_both_apps_in_one_run() -> None:
    """examples/thumbnails/loadtest.py (of thumbnail_service.py), for one second per app."""
    import subprocess

    done = subprocess.run(
        [sys.executable, str(EXAMPLE / "loadtest.py"), "--seconds", "1"],
        capture_output=True,
        text=True,
        timeout=55,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith(("| before", "| after"))]
    assert len(rows) == 2, done.stdout
    assert "Traceback" not in done.stderr

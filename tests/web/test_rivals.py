"""The servers ``hybridio bench server`` races: each serves /io and /cpu and stops on SIGTERM."""

from __future__ import annotations

import re
import subprocess
import sys

import aiohttp
import anyio
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

from hybridio.web._work import spin

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("kind", ["pool", "threads", "multiproc"])
async def test_rival_serves_the_same_work_and_stops(kind: str) -> None:
    command = [sys.executable, "-m", "hybridio.web._rivals", kind, "--workers", "2"]
    process = await anyio.open_process(
        [*command, "--loops-per-ms", "1000"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        assert process.stdout is not None
        with anyio.fail_after(30):
            line = await BufferedByteReceiveStream(process.stdout).receive_until(b"\n", 4096)
        match = re.search(rb"http://127\.0\.0\.1:\d+", line)
        assert match, line
        base = match.group(0).decode()
        async with aiohttp.ClientSession() as session:
            for _ in range(4):  # the multi-process server spreads them over its processes
                async with session.get(f"{base}/cpu", params={"ms": "2"}) as response:
                    assert response.status == 200
                    assert (await response.json())["result"] == spin(2000)
            async with session.get(f"{base}/io", params={"ms": "1"}) as response:
                assert response.status == 200
        process.terminate()
        with anyio.fail_after(30):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
        await process.aclose()

"""The server as a process: SIGTERM drains requests in flight and exits 0; a second one exits now."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import anyio
import psutil
import pytest
from anyio.abc import ByteReceiveStream, Process
from anyio.streams.buffered import BufferedByteReceiveStream
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from hybridio.web._cli import serve

pytestmark = pytest.mark.anyio

EXAMPLE = Path(__file__).parents[2] / "examples" / "hybrid_server.py"


@asynccontextmanager
async def server(*command: str) -> AsyncIterator[tuple[Process, str]]:
    """Start a server process on an ephemeral loopback port; yield it and its base URL."""
    process = await anyio.open_process(
        [sys.executable, *command], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        stdout = BufferedByteReceiveStream(process.stdout)
        with anyio.fail_after(30):
            line = (await stdout.receive_until(b"\n", 4096)).decode()
        match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert match, line
        yield process, f"http://127.0.0.1:{match.group(1)}"
    finally:
        if process.returncode is None:
            process.kill()
        await process.aclose()


async def _cpu_in_flight(session: aiohttp.ClientSession, base: str) -> float:
    async with session.get(f"{base}/metrics") as response:
        text = await response.text()
    for family in text_string_to_metric_families(text):
        if family.name == "hybridio_web_in_flight":
            return sum(s.value for s in family.samples if s.labels["kind"] == "cpu")
    raise AssertionError("no hybridio_web_in_flight in /metrics")


async def _wait_in_flight(session: aiohttp.ClientSession, base: str) -> None:
    with anyio.fail_after(20):
        while await _cpu_in_flight(session, base) < 1:  # noqa: ASYNC110 - polling over HTTP
            await anyio.sleep(0.02)


async def _stderr(process: Process) -> str:
    assert process.stderr is not None
    stream: ByteReceiveStream = process.stderr
    chunks: list[bytes] = []
    with anyio.move_on_after(5):
        chunks.extend([chunk async for chunk in stream])
    return b"".join(chunks).decode(errors="replace")


async def test_sigterm_lets_the_cpu_request_in_flight_finish_then_exits_0() -> None:
    async with (
        server(str(EXAMPLE), "--port", "0", "--workers", "1") as (process, base),
        aiohttp.ClientSession() as session,
    ):
        workers = psutil.Process(process.pid).children(recursive=True)
        assert workers  # warmed up before the port was announced
        results: list[tuple[int, str]] = []

        async def slow_request() -> None:
            url = f"{base}/cpu?ms=1200&mode=process"
            async with session.get(url) as response:
                results.append((response.status, await response.text()))

        async with anyio.create_task_group() as tg:
            tg.start_soon(slow_request)
            await _wait_in_flight(session, base)
            process.send_signal(signal.SIGTERM)
        with anyio.fail_after(20):
            assert await process.wait() == 0
        assert results[0][0] == 200, results
        assert '"result"' in results[0][1]
        assert "draining" in await _stderr(process)
        assert not [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]


async def test_second_signal_exits_at_once_and_kills_the_workers() -> None:
    command = ("-m", "hybridio.web", "--port", "0", "--workers", "1", "--grace", "30")
    async with server(*command) as (process, base), aiohttp.ClientSession() as session:
        workers = psutil.Process(process.pid).children(recursive=True)
        errors: list[BaseException] = []

        async def doomed_request() -> None:
            try:
                async with session.get(f"{base}/cpu?ms=9000&mode=process") as response:
                    await response.read()
            except aiohttp.ClientError as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(doomed_request)
            await _wait_in_flight(session, base)
            process.send_signal(signal.SIGTERM)
            await anyio.sleep(0.3)
            process.send_signal(signal.SIGTERM)
            with anyio.fail_after(5):
                assert await process.wait() == 128 + signal.SIGTERM
        assert errors  # the connection was dropped, not answered
        with anyio.fail_after(5):
            while any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers):  # noqa: ASYNC110
                await anyio.sleep(0.05)


def test_serve_command_help_and_bad_options() -> None:
    runner = CliRunner()
    result = runner.invoke(serve, ["--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--workers", "--grace", "--worker-nice"):
        assert option in result.output
    result = runner.invoke(serve, ["--port", "99999"])
    assert result.exit_code == 2
    assert "99999" in result.output

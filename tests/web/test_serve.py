"""The server as a process: SIGTERM drains requests in flight and exits 0; a second one exits now."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Self

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


@pytest.fixture
def loop_option(anyio_backend: Any) -> str:
    """The server process runs on the loop the test runs on: ``--loop asyncio|uvloop``."""
    _, options = anyio_backend
    return "uvloop" if options.get("use_uvloop") else "asyncio"


def _with_fd_limit(limit: int, *command: str) -> list[str]:
    """``command`` run by this Python with its soft open-file limit lowered to ``limit``."""
    code = (
        "import os, resource, sys; "
        "_, hard = resource.getrlimit(resource.RLIMIT_NOFILE); "
        f"resource.setrlimit(resource.RLIMIT_NOFILE, ({limit}, hard)); "
        "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
    )
    return ["-c", code, *command]


@asynccontextmanager
async def server(
    *command: str, stderr: int = subprocess.PIPE
) -> AsyncIterator[tuple[Process, str]]:
    """Start a server process on an ephemeral loopback port; yield it and its base URL."""
    process = await anyio.open_process(
        [sys.executable, *command], stdout=subprocess.PIPE, stderr=stderr
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
    for option in (
        "--host",
        "--port",
        "--workers",
        "--grace",
        "--worker-nice",
        "--max-connections",
        "--header-timeout",
        "--keepalive-timeout",
        "--loop",
    ):
        assert option in result.output
    for bad in (["--header-timeout", "0"], ["--max-connections", "0"], ["--loop", "trio"]):
        assert runner.invoke(serve, bad).exit_code == 2, bad
    result = runner.invoke(serve, ["--port", "99999"])
    assert result.exit_code == 2
    assert "99999" in result.output


class _Pipe:
    """A pipe for a server's stderr; on exit, closes the ends the test has not closed."""

    def __init__(self) -> None:
        self.read_end, self.write_end = os.pipe()
        self._open = {self.read_end, self.write_end}

    def close(self, fd: int) -> None:
        if fd in self._open:
            self._open.discard(fd)
            os.close(fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        for fd in list(self._open):
            self.close(fd)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_signal_stops_the_server_when_its_stderr_pipe_is_broken(
    signum: signal.Signals, loop_option: str
) -> None:
    """A restarted log collector leaves stderr a broken pipe: the signal must still stop it."""
    command = ("-m", "hybridio.web", "--port", "0", "--workers", "1", "--loop", loop_option)
    with _Pipe() as pipe:
        async with server(*command, stderr=pipe.write_end) as (process, base):
            pipe.close(pipe.write_end)
            pipe.close(pipe.read_end)  # nobody reads the server's stderr any more: EPIPE
            async with aiohttp.ClientSession() as session, session.get(f"{base}/io") as response:
                assert response.status == 200  # its access log line goes nowhere
            process.send_signal(signum)
            with anyio.fail_after(20):
                assert await process.wait() == 0


@pytest.mark.parametrize("access_log", [False, True], ids=["no-access-log", "access-log"])
async def test_a_signal_stops_the_server_when_its_stderr_pipe_is_full(
    loop_option: str, access_log: bool
) -> None:
    """A log collector that stopped reading: neither the draining line nor an access-log line
    stuck in its writer thread may block the loop or the exit."""
    command = ("-m", "hybridio.web", "--port", "0", "--workers", "1", "--loop", loop_option)
    options = () if access_log else ("--no-access-log",)
    with _Pipe() as pipe:
        async with server(*command, *options, stderr=pipe.write_end) as (process, base):
            _fill(pipe.write_end)
            async with aiohttp.ClientSession() as session, session.get(f"{base}/io") as response:
                assert response.status == 200  # its access-log line cannot be written
            process.send_signal(signal.SIGTERM)
            with anyio.fail_after(20):
                assert await process.wait() == 0


def _fill(fd: int) -> None:
    """Fill the pipe ``fd`` writes to (its flag is shared with the server's descriptor: it is
    non-blocking only while filling)."""
    os.set_blocking(fd, False)
    for chunk in (b"x" * 4096, b"x"):
        with contextlib.suppress(BlockingIOError):
            while True:
                os.write(fd, chunk)
    os.set_blocking(fd, True)


async def test_a_full_stderr_pipe_does_not_block_requests_with_the_access_log_on(
    loop_option: str,
) -> None:
    """Each request writes an access-log line: with a collector that stopped reading, the lines
    wait in (or drop from) a bounded backlog, and the loop keeps answering and stops on SIGTERM."""
    command = ("-m", "hybridio.web", "--port", "0", "--workers", "1", "--loop", loop_option)
    with _Pipe() as pipe:
        async with server(*command, stderr=pipe.write_end) as (process, base):
            _fill(pipe.write_end)
            async with aiohttp.ClientSession() as session:
                with anyio.fail_after(20):
                    for _ in range(200):  # ~100 bytes of log each: more than a pipe holds
                        async with session.get(f"{base}/io") as response:
                            assert response.status == 200
            os.set_blocking(pipe.read_end, False)  # the collector reads again: lines follow
            logged = b""
            with anyio.fail_after(20):
                while b'"GET /io HTTP/1.1" 200' not in logged:
                    with contextlib.suppress(BlockingIOError):
                        logged += os.read(pipe.read_end, 1 << 16)
                    await anyio.sleep(0.01)
            process.send_signal(signal.SIGTERM)
            with anyio.fail_after(20):
                assert await process.wait() == 0


async def test_slow_clients_under_a_low_open_file_limit_do_not_starve_other_requests(
    loop_option: str,
) -> None:
    """Slowloris: 150 connections that never finish their head, under a limit of 128 files.

    The default cap (half the limit) keeps the server able to accept: the oldest head-less
    connections are closed to make room, and every probe is answered.
    """
    command = _with_fd_limit(
        128, "-m", "hybridio.web", "--port", "0", "--workers", "1", "--loop", loop_option
    )
    port_of = re.compile(r":(\d+)$")
    async with server(*command) as (_, base), aiohttp.ClientSession() as session:
        match = port_of.search(base)
        assert match
        slow = []
        for _ in range(150):
            stream = await anyio.connect_tcp("127.0.0.1", int(match.group(1)))
            await stream.send(b"GET /io HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            slow.append(stream)
        timeout = aiohttp.ClientTimeout(total=20)
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as probes:
            for _ in range(20):
                async with probes.get(f"{base}/io") as response:
                    assert response.status == 200
        async with session.get(f"{base}/metrics") as response:
            metrics = await response.text()
        families = {f.name: f for f in text_string_to_metric_families(metrics)}
        assert families["hybridio_web_max_connections"].samples[0].value == 64
        assert families["hybridio_web_connections"].samples[0].value <= 64
        for stream in slow:
            await stream.aclose()

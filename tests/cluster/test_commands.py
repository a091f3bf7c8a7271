"""``hybridio serve --cluster`` and ``hybridio crawl --cluster``: the work reaches the cluster."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import anyio
import distributed
import pytest

from hybridio.crawl import generate_site
from hybridio.crawl._testserver import TestSiteServer

pytestmark = pytest.mark.anyio

HYBRIDIO = Path(sys.executable).with_name("hybridio")
ASYNCIO_ONLY = pytest.mark.parametrize(
    "anyio_backend", [pytest.param(("asyncio", {}), id="asyncio")]
)


def task_prefixes(client: distributed.Client) -> set[str]:
    """Names of the kinds of task the scheduler has run (they outlive the tasks)."""

    def names(dask_scheduler: distributed.Scheduler) -> list[str]:
        return list(dask_scheduler.task_prefixes)

    return set(client.run_on_scheduler(names))


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("HYBRIDIO_CLUSTER", None)  # the option alone must send the work
    return env


@ASYNCIO_ONLY
async def test_crawl_parses_on_the_cluster(
    cluster: distributed.LocalCluster, client: distributed.Client, tmp_path: Path
) -> None:
    generate_site(tmp_path / "site", pages=15)
    out = tmp_path / "pages.jsonl"
    cluster_option = ["--cluster", cluster.scheduler_address]
    with anyio.fail_after(50):
        async with TestSiteServer(tmp_path / "site") as server:
            done = await anyio.run_process(
                [str(HYBRIDIO), "crawl", server.url, "--out", str(out), "-q", *cluster_option],
                env=environment(),
                check=False,
            )
    assert done.returncode == 0, done.stderr.decode()
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 15
    assert any(name.startswith("hybridio:hybridio.crawl") for name in task_prefixes(client))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def listening(url: str) -> bool:
    """True once the server answers at all (``/healthz`` says 503 while the loop lags)."""
    try:
        urllib.request.urlopen(url, timeout=10).close()
    except urllib.error.HTTPError as exc:
        exc.close()
    except OSError:
        return False
    return True


@ASYNCIO_ONLY
async def test_serve_runs_cpu_requests_on_the_cluster(
    cluster: distributed.LocalCluster, client: distributed.Client
) -> None:
    port = free_port()
    command = [str(HYBRIDIO), "serve", "--port", str(port), "--cluster", cluster.scheduler_address]
    server = await anyio.to_thread.run_sync(
        lambda: subprocess.Popen(command, env=environment(), stderr=subprocess.PIPE)
    )
    try:
        with anyio.fail_after(40):
            while not await anyio.to_thread.run_sync(listening, f"http://127.0.0.1:{port}/healthz"):
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                await anyio.sleep(0.2)
            url = f"http://127.0.0.1:{port}/cpu?ms=5&mode=process"
            assert (await anyio.to_thread.run_sync(get, url))["mode"] == "process"
        # The demo's /cpu work function (hybridio._workloads.spin) ran as a Dask task.
        assert any(name.startswith("hybridio:hybridio.") for name in task_prefixes(client))
    finally:
        server.terminate()
        server.wait(timeout=20)
        if server.stderr is not None:
            server.stderr.close()

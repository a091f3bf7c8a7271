"""End to end, as a user would: `dask scheduler` and two `dask worker` processes started from the
command line on 127.0.0.1, a script that uses them, a worker and then the scheduler killed mid-call.

The scheduler is started with ``allowed-failures=0``: Dask does not re-run the task of a worker
that dies, so the caller sees ``WorkerCrashed`` at once (the LocalCluster tests show the retries).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import distributed
import pytest

from hybridio import OffloadError, Runtime, WorkerCrashed, WorkerStartFailed
from hybridio._backends import _cluster

from . import _workload as w

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
DASK = Path(sys.executable).with_name("dask")
ASYNCIO_ONLY = pytest.mark.parametrize(
    "anyio_backend", [pytest.param(("asyncio", {}), id="asyncio")]
)


@dataclass
class CliCluster:
    address: str
    scheduler: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def written_pid(marker: Path) -> int:
    """The pid a call wrote to ``marker``, once it has."""
    path = anyio.Path(marker)
    while True:
        text = await path.read_text() if await path.exists() else ""
        if text:
            return int(text)
        await anyio.sleep(0.05)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=3)
        except subprocess.TimeoutExpired:  # a worker whose scheduler is gone may linger
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def cli_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliCluster]:
    address = f"tcp://127.0.0.1:{free_port()}"
    logs = tmp_path_factory.mktemp("dask-logs")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0",
    }
    env.pop("HYBRIDIO_CLUSTER", None)

    def spawn(name: str, *args: str) -> subprocess.Popen[bytes]:
        with (logs / f"{name}.log").open("wb") as log:
            return subprocess.Popen(
                [str(DASK), *args], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
            )

    port = address.rsplit(":", 1)[1]
    scheduler = spawn(
        "scheduler", "scheduler", "--host", "127.0.0.1", "--port", port, "--no-dashboard"
    )
    worker_options = ["--host", "127.0.0.1", "--nthreads", "1", "--no-nanny", "--no-dashboard"]
    workers: list[subprocess.Popen[bytes]] = []
    try:
        workers.extend(
            spawn(f"worker{n}", "worker", address, *worker_options, "--death-timeout", "20")
            for n in range(2)
        )
        with distributed.Client(address, timeout=30, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=40)
        yield CliCluster(address, scheduler, workers)
    finally:
        for process in [*workers, scheduler]:
            stop(process)


def test_a_users_script_runs_on_the_cluster(cli_cluster: CliCluster, tmp_path: Path) -> None:
    script = tmp_path / "shout.py"
    script.write_text(
        textwrap.dedent(
            """
            import anyio
            import hybridio

            def shout(word):  # lives in __main__: sent to the workers by value
                return word.upper() + "!"

            async def main():
                async with hybridio.Runtime() as rt:  # HYBRIDIO_CLUSTER says where
                    print(await rt.run_cpu(shout, "hello"))
                    async with rt.map_cpu(shout, ["a", "b", "c"]) as results:
                        print(" ".join([r async for r in results]))

            if __name__ == "__main__":
                anyio.run(main)
            """
        )
    )
    env = {**os.environ, "HYBRIDIO_CLUSTER": cli_cluster.address}
    done = subprocess.run(
        [sys.executable, str(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=45,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["HELLO!", "A! B! C!"]


async def test_calls_on_a_cli_cluster(cli_cluster: CliCluster) -> None:
    with anyio.fail_after(30):
        async with Runtime(cluster=cli_cluster.address) as rt:
            assert await rt.run_cpu(w.square, 9) == 81
            async with rt.map_cpu(w.square, range(500)) as results:
                assert [r async for r in results] == [i * i for i in range(500)]


@ASYNCIO_ONLY
async def test_a_worker_killed_mid_call(cli_cluster: CliCluster, tmp_path: Path) -> None:
    marker = tmp_path / "pid"
    with anyio.fail_after(40):
        async with Runtime(cluster=cli_cluster.address) as rt:
            crashed: list[BaseException] = []

            async def call() -> None:
                try:
                    await rt.run_cpu(w.report_then_nap, str(marker), 30.0)
                except WorkerCrashed as exc:
                    crashed.append(exc)

            async with anyio.create_task_group() as tg:
                tg.start_soon(call)
                pid = await written_pid(marker)
                assert pid in {p.pid for p in cli_cluster.workers}
                os.kill(pid, signal.SIGKILL)
            assert len(crashed) == 1
            assert await rt.run_cpu(w.where) != pid  # the other worker carries on


@ASYNCIO_ONLY
async def test_the_scheduler_going_away_mid_call(
    cli_cluster: CliCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_cluster, "CONNECT_TIMEOUT", 1.0)
    address = cli_cluster.address
    with anyio.fail_after(40):
        async with Runtime(cluster=address) as rt:
            assert await rt.run_cpu(w.square, 3) == 9
            async with anyio.create_task_group() as tg:

                async def call() -> None:
                    with pytest.raises(OffloadError, match=address):
                        await rt.run_cpu(w.nap, 20.0)

                tg.start_soon(call)
                await anyio.sleep(0.5)
                started = time.monotonic()
                cli_cluster.scheduler.kill()
            assert time.monotonic() - started < 15  # told promptly, not hanging
            with pytest.raises(WorkerStartFailed, match=address):
                await rt.run_cpu(w.square, 3)

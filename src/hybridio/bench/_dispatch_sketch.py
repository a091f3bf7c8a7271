"""A minimal batching dispatcher: the ceiling the dispatch scenario measures hybridio against.

What a 60-line sketch does and nothing more: anyio.to_process's own workers, one driver task per
worker sending every queued call in one round trip, a bare asyncio future per caller. No queue
bound, no timeouts, no cancellation, no crash handling, no metrics, no cost model. Measured in the
same run as hybridio, it shows how much of the gap to a throughput target is the machine's and
how much is hybridio's own bookkeeping. asyncio only; benchmark use only.
"""

from __future__ import annotations

import asyncio
import pickle
import subprocess
import sys
from collections.abc import Callable
from typing import Any, Self, cast

import anyio
from anyio.abc import ByteReceiveStream, ByteSendStream, Process
from anyio.streams.buffered import BufferedByteReceiveStream

from ._work import run_batch

__all__ = ["BatchingSketch"]

_MAX_BATCH = 64
_Encoded = tuple[bytes, bytes]


class BatchingSketch:
    """``async with BatchingSketch(workers) as sketch: await sketch.call(fn, x)``."""

    def __init__(self, workers: int) -> None:
        self._workers = workers
        self._pending: list[tuple[_Encoded, asyncio.Future[Any]]] = []
        self._functions: dict[Callable[[Any], Any], bytes] = {}
        self._wake = asyncio.Event()
        self._processes: list[Process] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Self:
        for _ in range(self._workers):
            process = await anyio.open_process(
                [sys.executable, "-u", "-m", "anyio.to_process"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            self._processes.append(process)
            stdout = BufferedByteReceiveStream(cast(ByteReceiveStream, process.stdout))
            await stdout.receive_exactly(6)  # READY
            task = asyncio.get_running_loop().create_task(self._drive(process, stdout))
            self._tasks.append(task)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for process in self._processes:
            await cast(ByteSendStream, process.stdin).aclose()
            with anyio.move_on_after(2):
                await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()

    async def call(self, fn: Callable[[Any], Any], x: Any) -> Any:
        function = self._functions.get(fn)
        if function is None:
            function = self._functions[fn] = pickle.dumps(fn, pickle.HIGHEST_PROTOCOL)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        encoded = (function, pickle.dumps((x,), pickle.HIGHEST_PROTOCOL))
        self._pending.append((encoded, future))
        self._wake.set()
        return await future

    async def _drive(self, process: Process, stdout: BufferedByteReceiveStream) -> None:
        stdin = cast(ByteSendStream, process.stdin)
        batch: list[tuple[_Encoded, asyncio.Future[Any]]] = []
        try:
            while True:
                if not self._pending:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                batch = self._pending[:_MAX_BATCH]
                del self._pending[:_MAX_BATCH]
                command = ("run", run_batch, ([call for call, _ in batch],))
                await stdin.send(pickle.dumps(command, pickle.HIGHEST_PROTOCOL))
                header = await stdout.receive_until(b"\n", 64)
                payload = await stdout.receive_exactly(int(header.split(b" ")[1]))
                results = pickle.loads(payload)
                for (_, future), result in zip(batch, results, strict=True):
                    future.set_result(result)
                batch = []
        except Exception as exc:  # a benchmark must fail, never hang: fail every waiting caller
            for _, future in batch + self._pending:
                if not future.done():
                    future.set_exception(RuntimeError(f"the batching sketch failed: {exc!r}"))
            raise

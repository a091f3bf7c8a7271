"""hybridio's worker process speaks the documented framing, and nothing else travels on it."""

from __future__ import annotations

import os
import pickle
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

import hybridio
from hybridio import Runtime
from hybridio._backends import _worker
from hybridio._backends._serialize import encode_call

from . import _workload as w


class _Peer:
    """The parent's side of the protocol, spoken by hand."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair()
        self.sock = ours
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hybridio._backends._worker", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
        )
        theirs.close()
        self.sock.settimeout(30)
        self.stream = self.sock.makefile("rb")

    def send(self, kind: int, value: Any) -> None:
        buffers: list[pickle.PickleBuffer] = []
        payload = pickle.dumps(value, 5, buffer_callback=buffers.append)
        if kind == _worker.BATCH:  # the pickle's length, the out-of-band buffers and theirs
            raws = [bytes(buffer.raw()) for buffer in buffers]
            lengths = struct.pack(f"<{len(raws)}Q", *map(len, raws))
            payload = (
                _worker.BATCH_HEAD.pack(len(payload), len(raws))
                + lengths
                + payload
                + b"".join(raws)
            )
        self.sock.sendall(_worker.HEADER.pack(kind, len(payload)) + payload)

    def receive(self) -> tuple[int, Any]:
        kind, length = _worker.HEADER.unpack(self.stream.read(_worker.HEADER.size))
        return kind, pickle.loads(self.stream.read(length))

    def init(self, initializer: Any = None, initargs: tuple[Any, ...] = ()) -> tuple[int, Any]:
        blob = None if initializer is None else pickle.dumps(initializer)
        self.send(_worker.INIT, (sys.path, None, blob, pickle.dumps(initargs)))
        return self.receive()

    def wait(self) -> int:
        return self.process.wait(timeout=30)


@pytest.fixture
def peer() -> Iterator[_Peer]:
    peer = _Peer()
    yield peer
    peer.sock.close()
    if peer.process.poll() is None:
        peer.process.kill()
    peer.process.wait()


def _batch(*calls: tuple[Any, tuple[Any, ...]]) -> list[_worker.EncodedCall]:
    return [encode_call(fn, args)[1] for fn, args in calls]


def test_arguments_travel_out_of_band(peer: _Peer) -> None:
    assert peer.init()[0] == _worker.READY
    function, arguments, mapped = encode_call(w.identity, (b"a" * 100_000,))[1]
    assert isinstance(arguments, bytes)
    peer.send(_worker.BATCH, ([(function, pickle.PickleBuffer(arguments), mapped)], False))
    kind, (outcomes, _) = peer.receive()
    assert kind == _worker.RESULT
    assert pickle.loads(outcomes[0][1]) == b"a" * 100_000


def test_init_batches_in_order_then_eof_exits_cleanly(peer: _Peer) -> None:
    kind, pid = peer.init()
    assert (kind, pid) == (_worker.READY, peer.process.pid)
    # Two batches sent before reading: answered in order (the parent may pipeline).
    peer.send(_worker.BATCH, (_batch((w.square, (3,)), (w.fail, ("boom",))), False))
    peer.send(_worker.BATCH, (_batch((w.square, (4,))), True))
    kind, (outcomes, rss) = peer.receive()
    assert kind == _worker.RESULT
    assert rss == 0
    ok, payload, run_time = outcomes[0]  # (ok, payload, run seconds) per call
    assert ok
    assert pickle.loads(payload) == 9
    assert run_time >= 0.0
    ok, payload, _ = outcomes[1]
    assert not ok
    assert payload[0] == _worker.RAISED
    assert isinstance(pickle.loads(payload[1]), ValueError)
    kind, (outcomes, rss) = peer.receive()
    assert pickle.loads(outcomes[0][1]) == 16
    assert rss > 0  # asked for
    peer.sock.shutdown(socket.SHUT_WR)
    assert peer.wait() == 0


def test_a_failing_initializer_is_reported_then_the_worker_exits(peer: _Peer) -> None:
    kind, (summary, tb, blob) = peer.init(w.failing_initializer)
    assert kind == _worker.INIT_FAILED
    assert summary == "RuntimeError: initializer exploded"
    assert "failing_initializer" in tb
    assert isinstance(pickle.loads(blob), RuntimeError)
    assert peer.wait() == _worker.EXIT_INIT_FAILED


def test_an_unknown_message_is_a_framing_error(peer: _Peer) -> None:
    assert peer.init()[0] == _worker.READY
    peer.send(99, None)
    assert peer.wait() == _worker.EXIT_FRAMING


def test_a_batch_before_init_is_a_framing_error(peer: _Peer) -> None:
    peer.send(_worker.BATCH, ([], False))
    assert peer.wait() == _worker.EXIT_FRAMING


def test_writes_to_fd_1_do_not_reach_the_channel(peer: _Peer) -> None:
    assert peer.init()[0] == _worker.READY
    peer.send(_worker.BATCH, (_batch((w.write_to_fd1, (7,))), False))
    kind, (outcomes, _) = peer.receive()
    assert kind == _worker.RESULT
    assert pickle.loads(outcomes[0][1]) == 7


@pytest.mark.anyio
async def test_callers_never_get_each_others_results_when_workers_write_to_fd_1() -> None:
    """The defect this worker fixes: bytes on fd 1 once handed callers other callers' results."""
    async with Runtime(cpu_workers=2) as rt:
        results: dict[int, int] = {}

        async def call(i: int) -> None:
            results[i] = await rt.run_cpu(w.write_to_fd1, i)

        async with anyio.create_task_group() as tg:
            for i in range(64):
                tg.start_soon(call, i)
        assert results == {i: i for i in range(64)}
        assert rt.stats()["cpu"].worker_restarts == 0


@pytest.mark.anyio
async def test_an_idle_worker_that_dies_is_replaced_before_it_is_used() -> None:
    async with Runtime(cpu_workers=1) as rt:
        pid, _ = await rt.run_cpu(w.where)
        os.kill(pid, 9)
        with anyio.fail_after(10):
            while pid in rt.worker_pids():  # noqa: ASYNC110 - the reader notices the death
                await anyio.sleep(0.01)
        new_pid, _ = await rt.run_cpu(w.where)  # never handed to the dead worker
        assert new_pid != pid
        assert rt.stats()["cpu"].crashes == 0


def test_worker_module_stays_light() -> None:
    """Every worker imports it: it must not pull in the runtime's web, crawl or bench layers."""
    code = (
        "import sys, hybridio._backends._worker; "
        "print(sorted(m for m in sys.modules if m.startswith(('aiohttp', 'hybridio.web'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert hybridio.__version__

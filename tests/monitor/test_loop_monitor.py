"""LoopMonitor on every backend: blocks are caught with their culprit, nothing is left running.

These tests hold on a busy machine (cores taken by other processes): a block the test causes
lasts until the watchdog has sampled it and uses a known amount of the loop thread's *CPU* time
or sleeps a known time, and only ``code`` blocks are counted (a starved loop adds ``stall``s).
"""

from __future__ import annotations

import logging
import sys
import threading
import time

import anyio
import anyio.lowlevel
import pytest

import hybridio
from hybridio._monitor._stack import Capture, base_frames, capture
from hybridio.monitor import BlockEvent, LoopMonitor

from ._sampling import sampled, wait_until_parked

pytestmark = pytest.mark.anyio


def _zebra_quokka_blocks_the_loop(monitor: LoopMonitor, seconds: float) -> None:
    time.sleep(seconds)
    while not sampled(monitor):  # a starved watchdog may wake late: the block waits for it
        time.sleep(0.005)


def _spins_on_the_loop(monitor: LoopMonitor, cpu_seconds: float) -> None:
    # CPU time, not wall time: on a busy machine the loop thread gets a share of a core only.
    end = time.thread_time() + cpu_seconds
    while time.thread_time() < end:
        pass
    while not sampled(monitor):  # sleeping meanwhile: the spin's own line stays the commonest
        time.sleep(0.001)


def _code_blocks(monitor: LoopMonitor) -> list[BlockEvent]:
    return [b for b in monitor.report().blocks if b.cause == "code"]


def _watchdogs() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "hybridio-loop-watchdog"]


async def test_sleep_on_the_loop_is_one_block_naming_the_function() -> None:
    async with LoopMonitor(threshold=0.05) as monitor:
        await anyio.sleep(0.03)
        _zebra_quokka_blocks_the_loop(monitor, 0.2)
        await anyio.sleep(0.03)
    report = monitor.report()
    (block,) = _code_blocks(monitor)
    assert block.cause == "code"
    assert block.culprit is not None
    assert block.culprit.function == "_zebra_quokka_blocks_the_loop"
    assert block.culprit.filename == __file__
    assert block.culprit.line in ("time.sleep(seconds)", "time.sleep(0.005)")
    assert "_zebra_quokka_blocks_the_loop" in block.stack
    assert "test_sleep_on_the_loop_is_one_block_naming_the_function" in block.stack
    assert block.duration >= 0.2 - monitor.interval  # it may begin before the beat is due
    assert block.cpu_time < 0.2  # it slept: the evidence says so
    assert report.blocked_seconds == sum(b.duration for b in report.blocks)
    assert "_zebra_quokka_blocks_the_loop" in str(report)
    # The other blocks a busy machine may add name no code.
    assert [b.culprit for b in report.blocks if b.cause != "code"] == [None] * (
        report.total_blocks - 1
    )


async def test_cpu_work_holding_the_gil_is_caught_with_its_line() -> None:
    async with LoopMonitor(threshold=0.05) as monitor:
        await anyio.sleep(0.03)
        _spins_on_the_loop(monitor, 0.2)
        await anyio.sleep(0.03)
    (block,) = _code_blocks(monitor)
    assert block.culprit is not None
    assert block.culprit.function == "_spins_on_the_loop"
    assert block.culprit.line in ("while time.thread_time() < end:", "pass", "time.sleep(0.001)")
    assert block.cpu_time >= 0.2
    assert block.duration >= 0.2 - monitor.interval


async def test_a_loop_that_only_awaits_blames_no_code() -> None:
    async def chatty() -> None:
        for _ in range(40):
            await anyio.sleep(0.005)

    async with LoopMonitor(threshold=0.05) as monitor, anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(chatty)
    report = monitor.report()
    assert report.heartbeats > 0
    # A loop starved of CPU by other processes may be late ("stall"), but no code is blamed.
    assert [b for b in report.blocks if b.cause == "code" or b.culprit is not None] == []


async def test_an_idle_loop_sampled_while_it_waits_blames_nothing() -> None:
    # The loop waits in its selector (asyncio, uvloop: a C call with no frame; trio: epoll.poll,
    # or, under anyio's pytest plugin, trio's guest run waiting in queue.Queue.get) while a
    # thread samples it: the stack shows only the loop waiting, never a culprit.
    loop_thread = threading.get_ident()
    base = {id(frame): frame for frame in base_frames(sys._getframe())}

    def sample_the_waiting_loop() -> Capture | None:
        wait_until_parked(loop_thread, base)  # the loop is still starting this thread at first
        return capture(loop_thread, base)

    sample = await anyio.to_thread.run_sync(sample_the_waiting_loop)
    assert sample is not None
    assert sample.culprit is None, sample.stack
    assert sample.cause == "stall"


async def test_the_lag_histogram_counts_heartbeats() -> None:
    async with LoopMonitor(threshold=0.05, interval=0.01) as monitor:
        # Not a fixed time: on a busy machine 0.2 s may hold fewer than 3 heartbeats.
        while monitor.report().heartbeats < 3:  # noqa: ASYNC110
            await anyio.sleep(0.01)
    report = monitor.report()
    assert report.lag.count == report.heartbeats
    assert report.lag.cumulative()[-1] == (float("inf"), report.heartbeats)
    # Each heartbeat sleeps at least `interval`: never more beats than the time allows.
    assert 3 <= report.heartbeats <= report.elapsed / 0.01 + 1
    assert report.p50 <= report.p90 <= report.p99 <= report.max


async def test_no_thread_is_left_on_exit() -> None:
    before = _watchdogs()
    async with LoopMonitor() as monitor:
        assert monitor.running
        assert len(_watchdogs()) == len(before) + 1
        await anyio.sleep(0.02)
    assert not monitor.running
    assert _watchdogs() == before


async def test_no_thread_is_left_on_cancellation() -> None:
    before = _watchdogs()
    monitor = LoopMonitor()
    with anyio.move_on_after(0.05) as scope:
        async with monitor:
            await anyio.sleep_forever()
    assert scope.cancelled_caught
    assert not monitor.running
    assert _watchdogs() == before


async def test_started_in_a_task_group_and_stopped_by_cancelling_it() -> None:
    before = _watchdogs()
    monitor = LoopMonitor(threshold=0.05)
    async with anyio.create_task_group() as tg:
        await tg.start(monitor.run)
        _zebra_quokka_blocks_the_loop(monitor, 0.12)
        await anyio.sleep(0.02)
        tg.cancel_scope.cancel()
    assert _watchdogs() == before
    assert [b.culprit.function for b in _code_blocks(monitor) if b.culprit] == [
        "_zebra_quokka_blocks_the_loop"
    ]
    with pytest.raises(RuntimeError, match="already ran"):
        await monitor.run()


async def test_the_body_exception_propagates_as_itself() -> None:
    before = _watchdogs()
    with pytest.raises(KeyError, match="boom"):
        async with LoopMonitor():
            raise KeyError("boom")
    assert _watchdogs() == before


async def test_on_block_callback_and_logging(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[BlockEvent] = []
    async with LoopMonitor(threshold=0.05, on_block=seen.append, log_blocks=True) as monitor:
        await anyio.sleep(0.02)
        _zebra_quokka_blocks_the_loop(monitor, 0.12)
        await anyio.sleep(0.03)
    assert list(monitor.report().blocks) == seen
    assert len(_code_blocks(monitor)) == 1
    logged = [r for r in caplog.records if r.name == "hybridio.monitor"]
    assert len(logged) == len(seen)
    assert {r.levelno for r in logged} == {logging.WARNING}
    assert sum("_zebra_quokka_blocks_the_loop" in r.getMessage() for r in logged) == 1


async def test_a_failing_callback_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    def broken(event: BlockEvent) -> None:
        raise ValueError("callback bug")

    async with LoopMonitor(threshold=0.05, on_block=broken) as monitor:
        await anyio.sleep(0.02)
        _zebra_quokka_blocks_the_loop(monitor, 0.12)
        await anyio.sleep(0.05)
        assert monitor.running
    assert len(_code_blocks(monitor)) == 1
    assert any("on_block callback failed" in r.getMessage() for r in caplog.records)


async def test_keeps_the_most_recent_blocks_and_counts_them_all() -> None:
    seen: list[BlockEvent] = []
    monitor = LoopMonitor(threshold=0.03, interval=0.005, max_blocks=2, on_block=seen.append)
    async with monitor:
        for _ in range(3):
            await anyio.sleep(0.02)
            _zebra_quokka_blocks_the_loop(monitor, 0.07)
        await anyio.sleep(0.02)
    report = monitor.report()
    assert [b.culprit.function for b in seen if b.culprit] == ["_zebra_quokka_blocks_the_loop"] * 3
    assert report.total_blocks == len(seen)
    assert report.blocks == tuple(seen[-2:])
    assert report.blocks[0].offset < report.blocks[1].offset


async def test_current_lag_and_healthy() -> None:
    monitor = LoopMonitor(threshold=0.05)
    assert monitor.current_lag == 0.0
    async with monitor:
        await anyio.sleep(0.02)
        assert monitor.healthy(max_lag=10.0)
        _zebra_quokka_blocks_the_loop(monitor, 0.12)
        # Still on the loop, before yielding: the next heartbeat is overdue.
        assert monitor.current_lag >= 0.12 - monitor.interval
        assert not monitor.healthy()
    assert monitor.current_lag == 0.0


async def test_the_public_names() -> None:
    assert hybridio.LoopMonitor is LoopMonitor
    async with hybridio.LoopMonitor() as monitor:
        await anyio.lowlevel.checkpoint()
    assert isinstance(monitor.report(), hybridio.LoopReport)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"threshold": 0}, "threshold must be a positive number"),
        ({"threshold": "1"}, "threshold must be a positive number"),
        ({"threshold": True}, "threshold must be a positive number"),
        ({"interval": -1.0}, "interval must be a positive number"),
        ({"threshold": 0.05, "interval": 0.05}, "must be smaller than threshold"),
        ({"max_blocks": 0}, "max_blocks must be a positive integer"),
    ],
)
def test_bad_arguments_say_what_is_wrong(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LoopMonitor(**kwargs)  # type: ignore[arg-type]


def test_report_before_start_is_empty() -> None:
    report = LoopMonitor().report()
    assert report.heartbeats == 0
    assert report.elapsed == 0.0
    assert report.blocks == ()
    assert "0 heartbeats" in str(report)

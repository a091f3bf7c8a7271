"""kind="auto": routing decisions, adaptation and explanations, on every event loop.

The functions have an unambiguous nature (a sleep releases the GIL, a pure-Python loop holds it,
an echo is tiny) and the assertions are about where calls went, never about how fast they were.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import pytest

import hybridio
from hybridio._runtime._auto import _MAX_FIRST_PROBES, AutoPolicy

# kind="auto" decides from timings of its probes (how long a spinning thread waits for the GIL):
# a line tracer changes exactly that, so coverage is paused in these tests (pytest-cov).
pytestmark = [pytest.mark.anyio, pytest.mark.no_cover]

#: Pure-Python iterations of ``crunch``: some tens of milliseconds holding the GIL.
HEAVY = 1_000_000


def echo(x: int) -> int:
    return x


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def crunch(n: int) -> int:
    total = 0
    for i in range(n):
        total += i
    return total


def name_of(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


class FakeClocks:
    """A monotonic clock and a wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now + 1.7e9


def runtime(clocks: FakeClocks | None = None, **policy: Any) -> hybridio.Runtime:
    rt = hybridio.Runtime(default_kind="auto", cpu_workers=1, threads=8)
    if clocks is not None:
        policy.update(clock=clocks.monotonic, wall_clock=clocks.wall)
    rt._auto_policy = AutoPolicy(**policy)
    return rt


async def settle(
    rt: hybridio.Runtime, fn: Callable[[Any], Any], arg: Any, kind: str, calls: int = 60
) -> hybridio.AutoDecision:
    """Call ``fn(arg)`` until auto routes it to ``kind`` (or give up after ``calls``)."""
    expected = fn(arg)
    for _ in range(calls):
        assert await rt.run(fn, arg) == expected
        decision = rt.stats().auto[name_of(fn)]
        if decision.kind == kind and not math.isnan(decision.run_time):
            return decision
    return rt.stats().auto[name_of(fn)]


async def test_tiny_function_runs_inline() -> None:
    async with runtime() as rt:
        decision = await settle(rt, echo, 7, "inline")
        assert decision.kind == "inline", decision
        assert decision.probes >= 1
        inline_before = rt.stats()["inline"].calls
        assert await rt.run(echo, 8) == 8
        assert rt.stats()["inline"].calls == inline_before + 1
        assert "offload costs" in decision.reason


async def test_first_call_of_an_unknown_function_runs_in_a_thread() -> None:
    async with runtime() as rt:
        assert await rt.run(echo, 1) == 1
        stats = rt.stats()
        assert stats["blocking"].calls == 1  # the probe
        assert stats["inline"].calls == 0
        assert stats.auto[name_of(echo)].probes == 1


async def test_gil_releasing_function_goes_to_a_thread() -> None:
    clocks = FakeClocks()
    async with runtime(clocks) as rt:
        assert await rt.run(nap, 0.03) == 0.03
        decision = rt.stats().auto[name_of(nap)]
        assert decision.kind == "blocking", decision
        assert "waits" in decision.reason
        assert decision.cpu_ratio < 0.2
        assert decision.run_time >= 0.03
        assert decision.changes == 1
        assert decision.changed_at == clocks.wall()
        assert decision.previous is None
        await rt.run(nap, 0.03)
        assert rt.stats()["blocking"].calls == 2
        assert rt.stats()["cpu"].calls == 0


async def test_gil_holding_function_goes_to_a_process() -> None:
    async with runtime() as rt:
        # up to _MAX_FIRST_PROBES probes (one may end unmeasured on a loaded machine), then one
        for _ in range(_MAX_FIRST_PROBES + 1):
            assert await rt.run(crunch, HEAVY) == crunch(HEAVY)
        decision = rt.stats().auto[name_of(crunch)]
        assert decision.kind == "cpu", decision
        assert "holds the GIL" in decision.reason
        assert decision.gil_ratio >= AutoPolicy().gil_from
        assert decision.cpu_ratio >= 0.2
        assert rt.stats()["cpu"].calls >= 1


async def test_calls_during_the_first_probe_wait_for_its_verdict() -> None:
    import anyio

    async with runtime() as rt:
        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(rt.run, nap, 0.05)
        decision = rt.stats().auto[name_of(nap)]
        assert decision.probes == 1
        assert decision.kind == "blocking"
        assert rt.stats()["blocking"].calls == 4
        assert rt.stats()["cpu"].calls == 0


async def test_inline_function_that_grows_moves_off_the_loop_and_back() -> None:
    async with runtime() as rt:
        decision = await settle(rt, crunch, 0, "inline")
        assert decision.kind == "inline"
        # It grows: one run far over the budget on the loop may be the machine's ...
        assert await rt.run(crunch, HEAVY) == crunch(HEAVY)
        assert rt.stats().auto[name_of(crunch)].kind == "inline"
        # ... two in a row are the function's: its next call is measured in a thread.
        assert await rt.run(crunch, HEAVY) == crunch(HEAVY)
        assert "2 runs in a row over the 1 ms budget" in rt.stats().auto[name_of(crunch)].reason
        decision = await settle(rt, crunch, HEAVY, "cpu", calls=6)
        assert decision.kind == "cpu", decision
        assert decision.previous == "inline"
        # It shrinks again: measured tiny in the process, it comes back inline.
        decision = await settle(rt, crunch, 0, "inline")
        assert decision.kind == "inline", decision
        assert decision.previous == "cpu"
        assert decision.changes >= 3


async def test_inline_timeout_is_checked_when_the_call_returns() -> None:
    async with runtime() as rt:
        assert (await settle(rt, crunch, 0, "inline")).kind == "inline"
        with pytest.raises(hybridio.OffloadTimeout):
            await rt.run(crunch, HEAVY, timeout=0.001)
        assert rt.stats()["inline"].timeouts == 1


async def test_sleeping_longer_moves_an_inline_function_to_a_thread() -> None:
    async with runtime() as rt:
        decision = await settle(rt, nap, 0.0, "inline")
        assert decision.kind == "inline", decision
        await rt.run(nap, 0.03)  # blocks the loop: once may be the machine's
        await rt.run(nap, 0.03)  # twice is the function's: measured next time
        await rt.run(nap, 0.03)
        decision = rt.stats().auto[name_of(nap)]
        assert decision.kind == "blocking", decision
        assert decision.previous == "inline"


async def test_offloaded_functions_are_probed_again_after_a_while() -> None:
    clocks = FakeClocks()
    async with runtime(clocks, reprobe_seconds=10.0) as rt:
        await rt.run(nap, 0.01)
        await rt.run(nap, 0.01)
        assert rt.stats().auto[name_of(nap)].probes == 1
        clocks.now += 11.0
        await rt.run(nap, 0.01)  # measured on its route: a probe is now due
        await rt.run(nap, 0.01)  # this one is the probe
        decision = rt.stats().auto[name_of(nap)]
        assert decision.probes == 2
        assert decision.kind == "blocking"
        assert decision.changes == 1  # same verdict: no change


async def test_offloaded_functions_are_probed_again_after_many_calls() -> None:
    async with runtime(reprobe_calls=3) as rt:
        for _ in range(6):
            await rt.run(nap, 0.002)
        assert rt.stats().auto[name_of(nap)].probes >= 2


async def test_offload_decorator_and_module_level_run() -> None:
    @hybridio.offload
    def add(a: int, b: int, *, scale: int = 1) -> int:
        return (a + b) * scale

    assert repr(add).startswith("<offload ")
    async with runtime() as rt:
        assert await add(1, 2) == 3
        assert await add(1, 2, scale=10) == 30
        assert await hybridio.run(echo, 5, kind="auto") == 5
        assert await rt.run(add, 2, 2) == 4
        auto = rt.stats().auto
        assert name_of(echo) in auto
        assert any(name.endswith("add") for name in auto)


async def test_explicit_kind_overrides_the_default() -> None:
    async with runtime() as rt:
        assert await rt.run(echo, 1, kind="blocking") == 1
        assert rt.stats().auto == {}


async def test_map_over_auto_is_refused() -> None:
    async with runtime() as rt:
        with pytest.raises(ValueError, match="no workers to map over"):
            rt.map(echo, [1, 2], kind="auto")


async def test_errors_propagate_and_are_measured() -> None:
    def fail(x: int) -> int:
        raise KeyError(x)

    async with runtime() as rt:
        with pytest.raises(KeyError):
            await rt.run(fail, 1)
        assert rt.stats().auto[name_of(fail)].probes == 1


def test_default_kind_is_checked() -> None:
    with pytest.raises(ValueError, match="default_kind"):
        hybridio.Runtime(default_kind="nowhere")  # type: ignore[arg-type]


def test_kinds_include_auto() -> None:
    from hybridio._runtime._runtime import KINDS

    assert "auto" in KINDS

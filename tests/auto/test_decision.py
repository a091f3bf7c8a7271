"""How kind="auto" weighs its probes, on synthetic measurements (no timing: the decision logic).

A probe's spinner waits for the GIL whoever holds it: beside another probe (two more threads
competing for the GIL) it may wait most of the time beside a function that releases the GIL,
and a function whose hold was not measured goes to a process. These cases must not decide for
good: such probes are not counted, and the function is probed again when no other probe runs.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable
from typing import Any

import anyio
import pytest

from hybridio._core._metrics import KindCounters
from hybridio._runtime._auto import (
    _GIL_SAMPLES,
    _MAX_FIRST_PROBES,
    AutoPolicy,
    AutoRouter,
    Measurement,
    _Probe,
    _Profile,
)

pytestmark = pytest.mark.anyio

#: Hashing beside a free spinner: it got as much CPU as the function (gil_ratio 0).
RELEASES = Measurement(wall=0.02, cpu=0.02, delay=0.0, window=0.02, fn_cpu=0.02, spin_cpu=0.02)
#: The same function beside another probe: the spinner waited for that probe's threads.
RELEASES_BESIDE_A_PROBE = Measurement(
    wall=0.02, cpu=0.02, delay=0.0, window=0.02, fn_cpu=0.02, spin_cpu=0.009
)
#: Pure Python: the spinner waited for the GIL nearly all along.
HOLDS = Measurement(wall=0.03, cpu=0.03, delay=0.0, window=0.025, fn_cpu=0.024, spin_cpu=0.001)
#: Computed, but the spinner never competed (it ended first, or the spinner got no GIL).
UNMEASURED = Measurement(wall=0.005, cpu=0.005, delay=0.0)


class Gate:
    """A backend that holds every call until opened, and records what it was given."""

    def __init__(self) -> None:
        self.calls: list[Any] = []
        self.open = anyio.Event()
        self.called = anyio.Event()

    def call(self, fn: Any, args: tuple[Any, ...], *, timeout: float | None) -> Awaitable[Any]:
        self.calls.append(fn)
        self.called.set()
        self.called = anyio.Event()
        return self.open.wait()

    async def reached(self, calls: int) -> None:
        with anyio.fail_after(5):
            while len(self.calls) < calls:
                await self.called.wait()


async def run(auto: AutoRouter, fn: Any) -> None:
    await auto.call(fn, (b"x",), timeout=None)


def router(backend: Gate | None = None) -> AutoRouter:
    counters = {kind: KindCounters(kind) for kind in ("inline", "blocking", "cpu")}
    gate = backend or Gate()
    return AutoRouter(lambda kind: gate, counters, AutoPolicy())  # type: ignore[arg-type,return-value]


def profile(name: str = "mod.hash") -> _Profile:
    return _Profile(name, anyio.Event())


def decide(auto: AutoRouter, p: _Profile, m: Measurement, *, overlapped: bool = False) -> None:
    p.probe_due = False  # as _probe() does before the call
    auto._decide(p, m, latency=m.wall + 0.0002, inside=m.wall, overlapped=overlapped)


def test_the_synthetic_measurements_mean_what_they_say() -> None:
    policy = AutoPolicy()
    assert RELEASES.gil_ratio < policy.gil_from <= RELEASES_BESIDE_A_PROBE.gil_ratio
    assert HOLDS.gil_ratio > 0.9
    assert math.isnan(UNMEASURED.gil_ratio)
    assert min(m.cpu_ratio for m in (RELEASES, RELEASES_BESIDE_A_PROBE, HOLDS)) > 0.9


async def test_a_probe_beside_another_one_is_not_counted() -> None:
    auto, p = router(), profile()
    decide(auto, p, RELEASES_BESIDE_A_PROBE, overlapped=True)
    assert p.kind == "cpu"  # not measured: a process, slower at worst
    assert "could not be measured alone" in p.reason
    assert math.isnan(p.gil_ratio)
    assert p.probe_due  # measured again
    decide(auto, p, RELEASES)
    assert p.kind == "blocking", p.reason
    assert p.gil_ratio == RELEASES.gil_ratio
    assert "without the GIL" in p.reason


async def test_the_same_reading_alone_counts() -> None:
    auto, p = router(), profile()
    decide(auto, p, RELEASES_BESIDE_A_PROBE)
    assert p.kind == "cpu"
    assert "holds the GIL" in p.reason


async def test_unmeasured_probes_do_not_use_up_the_confirmations() -> None:
    auto, p = router(), profile()
    for _ in range(_MAX_FIRST_PROBES - 1):
        decide(auto, p, UNMEASURED)
        assert p.kind == "cpu"
        assert p.probe_due
    decide(auto, p, RELEASES)
    assert p.kind == "blocking"


async def test_probing_an_unmeasurable_function_stops() -> None:
    auto, p = router(), profile()
    for _ in range(_MAX_FIRST_PROBES):
        decide(auto, p, UNMEASURED)
    assert p.kind == "cpu"
    assert not p.probe_due


async def test_a_holder_is_confirmed_by_three_measured_probes_and_stays_a_holder() -> None:
    auto, p = router(), profile()
    decide(auto, p, HOLDS)
    decide(auto, p, UNMEASURED)
    decide(auto, p, RELEASES)  # by chance it looked free: the highest ratio counts
    assert p.kind == "cpu"
    assert p.probe_due
    decide(auto, p, HOLDS)
    assert p.kind == "cpu"
    assert len(p.gil_samples) == _GIL_SAMPLES
    assert not p.probe_due


def digest(data: bytes) -> int:
    return len(data)


async def test_a_probe_waits_for_the_functions_calls_in_flight() -> None:
    gate = Gate()
    auto = router(gate)
    p = auto._profile(digest)
    decide(auto, p, RELEASES)
    p.probe_due = p.confirming = False  # confirmed: its calls go to threads
    async with anyio.create_task_group() as tg:
        tg.start_soon(run, auto, digest)  # on its route: held by the gate
        await anyio.wait_all_tasks_blocked()
        p.probe_due = True  # drifted, or its time came
        tg.start_soon(run, auto, digest)  # the probe: waits for the first call
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(run, auto, digest)  # waits for the probe's verdict
        await anyio.wait_all_tasks_blocked()
        assert gate.calls == [digest]
        gate.open.set()
    _, probe, _ = gate.calls  # the third call ran after the probe ended
    assert isinstance(probe, _Probe)
    assert not probe.overlapped


async def test_calls_wait_for_the_confirming_probes() -> None:
    gate = Gate()
    auto = router(gate)
    p = auto._profile(digest)
    decide(auto, p, HOLDS)  # its first probe: confirmations are due
    assert p.kind == "cpu"
    assert p.confirming
    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(run, auto, digest)
        await anyio.wait_all_tasks_blocked()
        assert len(gate.calls) == 1  # the probe; the others wait for its verdict
        assert isinstance(gate.calls[0], _Probe)
        gate.open.set()


async def test_a_probe_that_could_not_wait_is_marked() -> None:
    gate = Gate()
    auto = router(gate)
    auto.policy = AutoPolicy(probe_wait=0.01)
    p = auto._profile(digest)
    decide(auto, p, RELEASES)
    p.probe_due = p.confirming = False  # confirmed: its calls go to threads
    async with anyio.create_task_group() as tg:
        tg.start_soon(run, auto, digest)
        await anyio.wait_all_tasks_blocked()
        p.probe_due = True
        tg.start_soon(run, auto, digest)
        await gate.reached(2)
        gate.open.set()
    assert gate.calls[1].overlapped


async def test_an_unknown_function_waits_for_other_probes() -> None:
    gate = Gate()
    auto = router(gate)
    async with anyio.create_task_group() as tg:
        tg.start_soon(run, auto, len)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(run, auto, hash)
        await anyio.wait_all_tasks_blocked()
        assert len(gate.calls) == 1
        gate.open.set()
    first, second = gate.calls
    assert not first.overlapped
    assert not second.overlapped


async def test_probes_running_at_once_are_marked() -> None:
    gate = Gate()
    auto = router(gate)
    auto.policy = AutoPolicy(probe_wait=0.01)
    async with anyio.create_task_group() as tg:
        tg.start_soon(run, auto, len)
        tg.start_soon(run, auto, hash)
        await gate.reached(2)
        gate.open.set()
    assert all(probe.overlapped for probe in gate.calls)
    assert not auto._probes

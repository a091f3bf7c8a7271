"""``kind="auto"``: route each function where it measured best, and keep measuring.

Per function (by name) a profile holds what was measured and where its calls go:

* The first call of an unknown function runs in a worker thread as a *probe*: it is timed (wall
  and thread CPU time) while, from a quarter of ``inline_budget`` on, a second thread spins pure
  Python beside it, letting go of the GIL every few microseconds. A function whose CPU time is
  a small part of its run time (and of the spinner's) *waits* (sleep, I/O, locks); one beside
  which the spinner waited for the GIL most of the time *holds the GIL* (pure Python: it takes
  the GIL back for a switch interval each time); one beside which it did not *releases the
  GIL* (C code: hashing, compression, numpy). A computing function gets up to three measured
  probes (six at most), and the highest ``gil_ratio`` of the last three counts: by chance a
  GIL holder may look free. Calls of the same function that arrive during a probe wait for its
  verdict (at most ``probe_wait``), so the loop is not blocked by guesses.
* A probe measures the function alone: it waits (at most ``probe_wait``) until no call of the
  function and no other probe runs, and during its first probes the function's calls wait
  for each verdict. The spinner waits for the GIL whoever holds it: beside a probe's two
  threads, or beside the function's own calls on every core (a thread handed the GIL then
  waits for a core, and the spinner with it), a GIL releaser looked like a holder (a sha256 of
  8 MB with 3 of its calls hashing in threads on 2 cores: ``gil_ratio`` 0.30-0.55, so
  processes). A probe that could not be alone, or ended before the spinner competed, does
  not count (unmeasured, a computing function goes to processes: slower, never wrong).
* The verdict: **inline** when its run time is below both the inline budget (the loop may be held
  that long) and what an offload would cost; else a **thread** (``"blocking"``) when it waits or
  runs beside Python in parallel; else a **process** (``"cpu"``).
* Every call keeps measuring: inline calls are timed on the loop; offloaded calls are read from
  the runtime's per-function counters (run time in the worker, offload overhead). Two inline
  runs in a row over the budget (one may be the machine's), or an average over it, move an
  inline function off the loop at its next call; an
  offloaded function whose run time drops below the offload cost comes inline; a run time that
  drifts by ``drift`` times since the last probe, ``reprobe_calls`` calls or ``reprobe_seconds``
  trigger a new probe (its other calls wait for its verdict, at most ``probe_wait``).

``Runtime.stats().auto`` shows, per function, an ``AutoDecision``: the route, why, the evidence
and when it last changed.

The spinner reads the function thread's CPU clock (``pthread_getcpuclockid``, Unix); where there
is none, the hold on the GIL is not measured and computing functions go to processes. On Linux
the run-queue delay (``/proc/self/task/<id>/schedstat``) is taken out of the waits, so that a
loaded machine's waits for a core are not taken for waits on the GIL (elsewhere they are, and
GIL-releasing functions may go to processes: slower, never wrong). The event loop thread's CPU
time in the window is taken out too: a loop busy running Python holds the GIL itself. Other
threads holding the GIL, or handed it and waiting for a core, are not taken out: hence a probe
alone. Threads of other functions offloaded meanwhile still count; at worst they send a GIL
releaser to processes.
"""

from __future__ import annotations

import functools
import math
import os
import threading
import time
import types
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from time import perf_counter, thread_time
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup
from anyio.lowlevel import checkpoint_if_cancelled

from .._core._exceptions import OffloadTimeout
from .._core._metrics import AutoDecision, KindCounters
from .._core._names import function_name, unwrap

if TYPE_CHECKING:
    from .._backends._base import Backend

__all__ = ["AutoPolicy", "AutoRouter"]

_MAX_PROFILES = 256
#: How long the spinner must compete, and compute, for a probe to tell about the GIL.
_MIN_WINDOW = 0.001
_MIN_CPU = 0.0003
#: Measured probes a computing function gets at first; the highest of the last ones' gil ratios
#: counts.
_GIL_SAMPLES = 3
#: Probes it gets at most for those (a probe may end unmeasured, or beside another probe).
_MAX_FIRST_PROBES = 2 * _GIL_SAMPLES


@dataclass(frozen=True)
class AutoPolicy:
    """The thresholds of ``kind="auto"`` (and its clocks, which tests replace)."""

    #: Longest run time allowed on the event loop.
    inline_budget: float = 0.001
    #: Two inline runs in a row over the budget, or a moving average of inline runs (each
    #: counting at most this many budgets) over it, move the function off the loop.
    inline_margin: float = 3.0
    #: CPU time over run time below which a function is said to wait (sleep, I/O, locks).
    waits_below: float = 0.2
    #: ``gil_ratio`` from which a function is said to hold the GIL (and goes to processes):
    #: near 1 for pure Python, near 0 for C code that releases it.
    gil_from: float = 0.25
    #: A run time this many times above or below the probed one triggers a new probe.
    drift: float = 10.0
    #: A new probe after this many calls / seconds since the last one.
    reprobe_calls: int = 2000
    reprobe_seconds: float = 30.0
    #: How long calls of an unknown function wait for its first probe before going to a thread.
    probe_wait: float = 0.25
    #: How long the probe's competing Python thread spins at most.
    spin_cap: float = 0.05
    #: A process round trip, until one was measured (seconds).
    process_cost_prior: float = 150e-6
    #: Weight of a new sample in the moving averages.
    alpha: float = 0.3
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time


# -- measuring in the worker thread --------------------------------------------------------------


def _run_delay(native_id: int) -> float:
    """Seconds the thread spent runnable but waiting for a core (Linux), else 0."""
    try:
        with open(f"/proc/self/task/{native_id}/schedstat", "rb") as file:
            return int(file.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def _cpu_clock(ident: int) -> Callable[[], float] | None:
    """A reader of another thread's CPU clock, where the platform has one."""
    getter = getattr(time, "pthread_getcpuclockid", None)
    if getter is None:  # pragma: no cover - not on Linux
        return None
    try:
        clock_id = getter(ident)
    except OSError:  # pragma: no cover
        return None
    return lambda: time.clock_gettime(clock_id)


@dataclass(frozen=True)
class Measurement:
    """What one probe measured, in seconds.

    ``wall``, ``cpu`` and ``delay`` (time runnable but waiting for a core, Linux) cover the
    whole call. ``window`` is how long the spinning Python thread competed; ``fn_cpu`` and
    ``spin_cpu`` are the CPU time the function and the spinner got in it, ``spin_delay`` the
    time the spinner waited for a core, ``loop_cpu`` the event loop thread's CPU time. The rest
    of the window the spinner waited for the GIL: held by the function, or by the loop.
    """

    wall: float
    cpu: float
    delay: float
    window: float = 0.0
    fn_cpu: float = 0.0
    spin_cpu: float = 0.0
    spin_delay: float = 0.0
    loop_cpu: float = 0.0

    @property
    def cpu_ratio(self) -> float:
        """How much it computes: near 0 when it waits (sleep, I/O), near 1 when it computes.

        Against the wall time minus the time it waited for a core, and against the spinner's
        CPU time when it competed (both threads suffer a loaded machine alike).
        """
        whole = self.wall - min(self.delay, self.wall)
        ratio = min(max(self.cpu / whole, 0.0), 1.0) if whole > 0 else 1.0
        if self.window >= _MIN_WINDOW and self.spin_cpu >= _MIN_CPU:
            # A loaded machine may keep a thread waiting for the GIL off a core long enough to
            # starve it in the window: either view showing it computing is enough.
            ratio = max(ratio, min(self.fn_cpu / self.spin_cpu, 1.0))
        return ratio

    @property
    def gil_ratio(self) -> float:
        """Share of its time the spinning Python thread waited for the GIL (nan: too short).

        Near 1 when the function holds the GIL (the spinner lets go of it every few
        microseconds and gets it back a switch interval later), near 0 when it releases it.
        Its time waiting for a core is left out, so a loaded machine does not inflate it.
        """
        free = self.window - min(self.spin_delay, self.window)  # not waiting for a core
        if free < _MIN_WINDOW or self.fn_cpu < _MIN_CPU:
            return math.nan
        # While the loop thread ran Python, it held the GIL: that wait is not the function's.
        waited = free - self.spin_cpu - self.loop_cpu
        return min(max(waited / free, 0.0), 1.0)


class _Spinner:
    """Spins pure Python beside the probed function, sampling the function thread's CPU clock."""

    def __init__(self, ident: int, loop_ident: int, delay: float, cap: float) -> None:
        self.ident = ident
        self.loop_ident = loop_ident
        self.delay = delay
        self.cap = cap
        self.begin = threading.Event()
        self.stop = threading.Event()
        #: the function thread's CPU clock when the function returned (set by that thread)
        self.fn_end = math.inf
        #: (window, its CPU time, its wait for a core, the function's and the loop thread's CPU
        #: time) in seconds
        self.result: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)

    def run(self) -> None:
        self.begin.wait()
        if self.stop.wait(self.delay):  # done before the delay: a tiny call, nothing to compete
            return
        fn_clock = _cpu_clock(self.ident)
        loop_clock = _cpu_clock(self.loop_ident)
        if fn_clock is None or loop_clock is None:  # pragma: no cover - GIL not measured
            return
        with _QueueClock() as queue:
            stop, cap = self.stop, self.cap
            start = perf_counter()
            mark = start, thread_time(), queue(), fn_clock(), loop_clock()
            first = mark
            while not stop.is_set():
                for _ in range(200):
                    pass
                # A system call: the GIL is let go, and a function that holds it takes it back
                # for a switch interval (5 ms) while this thread waits.
                queued = queue()
                if self.fn_end != math.inf:  # returned: what its thread does now is not its own
                    break
                now = perf_counter()
                mark = now, thread_time(), queued, fn_clock(), loop_clock()
                if now - start > cap:
                    break
        self.result = tuple(end - begin for end, begin in zip(mark, first, strict=True))


class _QueueClock:
    """The calling thread's time spent waiting for a core (Linux schedstat), else 0.

    Read by the thread itself, it is exact; each read is one system call, which lets go of the
    GIL (elsewhere ``time.sleep(0)`` does).
    """

    def __enter__(self) -> Callable[[], float]:
        try:
            self.fd = os.open(f"/proc/self/task/{threading.get_native_id()}/schedstat", os.O_RDONLY)
        except OSError:  # pragma: no cover - not Linux
            self.fd = -1
            return _no_queue
        return self.read

    def read(self) -> float:
        return int(os.pread(self.fd, 128, 0).split()[1]) / 1e9

    def __exit__(self, *exc_info: object) -> None:
        if self.fd >= 0:
            os.close(self.fd)


def _no_queue() -> float:  # pragma: no cover - not Linux
    time.sleep(0)
    return 0.0


class _Probe:
    """The function wrapped for one probing call in a worker thread; keeps its name for stats."""

    def __init__(self, fn: Callable[..., Any], module: str, qualname: str, policy: AutoPolicy):
        self.fn = fn
        self.loop_ident = threading.get_ident()  # made on the event loop's thread
        self.__module__ = module
        self.__qualname__ = qualname
        self.policy = policy
        self.measurement: Measurement | None = None
        self.inside = 0.0
        #: whether another probe, or a call of its function, ran at the same time (set on the
        #: event loop)
        self.overlapped = False

    def __call__(self, *args: Any) -> Any:
        entered = perf_counter()
        spinner = _Spinner(
            threading.get_ident(),
            self.loop_ident,
            self.policy.inline_budget / 4,
            self.policy.spin_cap,
        )
        thread = threading.Thread(target=spinner.run, name="hybridio-auto-probe", daemon=True)
        thread.start()
        native = threading.get_native_id()
        delay = _run_delay(native)
        spinner.begin.set()
        cpu, start = thread_time(), perf_counter()
        try:
            return self.fn(*args)
        finally:
            end_cpu = spinner.fn_end = thread_time()
            wall, cpu = perf_counter() - start, end_cpu - cpu
            delay = _run_delay(native) - delay
            spinner.stop.set()
            spinner.begin.set()  # if the function never started (it cannot fail to, but still)
            thread.join()
            window, spin_cpu, spin_delay, fn_cpu, loop_cpu = spinner.result
            self.measurement = Measurement(
                wall, cpu, delay, window, fn_cpu, spin_cpu, min(spin_delay, window), loop_cpu
            )
            self.inside = perf_counter() - entered


# -- the router on the event loop ----------------------------------------------------------------


class _Profile:
    """The live state of one function under ``kind="auto"``."""

    def __init__(self, name: str, done: anyio.Event) -> None:
        self.name = name
        self.kind = "probing"
        #: where it goes when offloaded: a thread unless it holds the GIL
        self.target = "blocking"
        self.previous: str | None = None
        self.reason = "unknown: its first call runs in a thread to measure it"
        self.run_time = math.nan
        self.run_at_probe = math.nan
        #: per kind: offload overhead per call measured by the dispatcher, and on the loop
        self.cost: dict[str, float] = {}
        self.send: dict[str, float] = {}
        self.cpu_ratio = math.nan
        self.gil_ratio = math.nan
        #: the last probes' gil ratios: the highest counts (on a loaded machine a thread holding
        #: the GIL may lose the race for it and look free, never the other way round)
        self.gil_samples: deque[float] = deque(maxlen=_GIL_SAMPLES)
        self.calls = 0
        self.probes = 0
        #: its offloaded calls running now
        self.in_flight = 0
        self.last_inline = 0.0
        #: inline runs in a row over the budget, and a moving average of (clipped) inline runs
        self.strikes = 0
        self.inline_load = math.nan
        self.changes = 0
        self.changed_at = math.nan
        self.probed_at = math.nan
        self.calls_since_probe = 0
        self.probe_due = True
        self.probing = False
        #: its first probes are not over: its calls wait for each one's verdict, as for the first
        self.confirming = False
        self.probe_done = done
        #: per kind: the (calls, run, overhead) totals of the runtime's counters last read
        self.seen: dict[str, tuple[float, float, float]] = {}


def _duration(seconds: float) -> str:
    if math.isnan(seconds):
        return "?"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} us"
    if seconds < 1.0:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g} s"


class AutoRouter:
    """The ``"auto"`` backend of a Runtime: routes each call to the inline, thread or process one."""

    kind = "auto"

    def __init__(
        self,
        backend: Callable[[str], Backend],
        counters: Mapping[str, KindCounters],
        policy: AutoPolicy | None = None,
    ) -> None:
        self._backend = backend
        self._counters = counters
        self.policy = policy or AutoPolicy()
        self._profiles: dict[str, _Profile] = {}
        self._by_fn: dict[Callable[..., Any], _Profile] = {}
        #: runtime-wide moving average of each kind's offload cost per call
        self._kind_cost: dict[str, float] = {}
        self._inline_counters = counters["inline"]
        #: inline timings waiting to be recorded, as ``KindCounters.record_timings`` takes them
        self._pending: list[tuple[str, float, float, float]] = []
        #: the probes running now
        self._probes: set[_Probe] = set()
        #: set when an offloaded call or a probe ends (probes waiting for a quiet moment)
        self._quieter: anyio.Event | None = None

    def start(self, task_group: TaskGroup) -> None:
        pass

    async def aclose(self) -> None:
        pass

    def worker_ids(self) -> list[int]:
        return []

    def decisions(self) -> dict[str, AutoDecision]:
        """A snapshot of every profile, for ``stats().auto``."""
        return {
            name: AutoDecision(
                function=name,
                kind=p.kind,
                reason=p.reason,
                run_time=p.run_time,
                offload_cost=self._cost(p, p.target),
                cpu_ratio=p.cpu_ratio,
                gil_ratio=p.gil_ratio,
                calls=p.calls,
                probes=p.probes,
                changes=p.changes,
                changed_at=p.changed_at,
                previous=p.previous,
            )
            for name, p in self._profiles.items()
        }

    # -- routing -------------------------------------------------------------------------------

    def call(
        self, fn: Callable[..., Any], args: tuple[Any, ...], *, timeout: float | None
    ) -> Awaitable[Any]:
        """Run ``fn(*args)`` where its profile says (probing it first when due)."""
        try:
            profile = self._by_fn.get(fn)
        except TypeError:  # an unhashable callable
            profile = None
        if profile is None:
            profile = self._profile(fn)
        if profile.probe_due and not profile.probing:
            return self._probe(profile, fn, args, timeout)
        kind = profile.kind
        if kind == "probing" or (kind != "inline" and (profile.probing or profile.confirming)):
            return self._after_probe(profile, fn, args, timeout)
        if kind == "inline":
            return self._inline(profile, fn, args, timeout)
        return self._offload(profile, kind, fn, args, timeout)

    def _profile(self, fn: Callable[..., Any]) -> _Profile:
        name = function_name(fn)
        profile = self._profiles.get(name)
        if profile is None:
            if len(self._profiles) >= _MAX_PROFILES:  # forget the oldest
                oldest = next(iter(self._profiles))
                del self._profiles[oldest]
                self._by_fn = {f: p for f, p in self._by_fn.items() if p.name != oldest}
            profile = self._profiles[name] = _Profile(name, anyio.Event())
        # Only functions are remembered by identity: a partial or a bound method is a new object
        # per call (found by name), and holding it would keep its arguments alive.
        if len(self._by_fn) < 4 * _MAX_PROFILES and (
            isinstance(fn, types.FunctionType) or hasattr(fn, "__hybridio_kind__")
        ):
            self._by_fn[fn] = profile
        return profile

    async def _inline(
        self,
        profile: _Profile,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        timeout: float | None,
    ) -> Any:
        # The inline backend's work, minus a coroutine and a histogram update per call (timings
        # are recorded in batches): this path is what makes tiny calls cheap.
        await checkpoint_if_cancelled()
        counters = self._inline_counters
        counters.calls += 1
        target = fn if type(fn) is types.FunctionType else unwrap(fn)
        start = perf_counter()
        try:
            value = target(*args)
        except BaseException:
            counters.errors += 1
            raise
        finally:
            self._observe_inline(profile, perf_counter() - start)
        elapsed = profile.last_inline
        if timeout is not None and elapsed > timeout:
            counters.timeouts += 1
            raise OffloadTimeout(
                "inline",
                timeout,
                profile.name,
                f" (it ran {elapsed:.3g} s on the event loop, which cannot be interrupted; "
                "its result was discarded)",
            )
        counters.completed += 1
        return value

    def flush(self) -> None:
        """Record the inline timings not recorded yet (``stats()`` calls this first)."""
        if self._pending:
            self._inline_counters.record_timings(self._pending)
            self._pending = []

    async def _offload(
        self,
        profile: _Profile,
        kind: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        timeout: float | None,
    ) -> Any:
        backend = self._backend(kind)
        start = perf_counter()
        waiting = backend.call(fn, args, timeout=timeout)
        # What the call costs the loop before it leaves it (pickling, for a process).
        profile.send[kind] = self._ewma(profile.send.get(kind, math.nan), perf_counter() - start)
        profile.in_flight += 1
        try:
            return await waiting
        finally:
            profile.in_flight -= 1
            if not profile.in_flight:
                self._settled()
            profile.calls += 1
            profile.calls_since_probe += 1
            self._sample(profile, kind)

    async def _after_probe(
        self,
        profile: _Profile,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        timeout: float | None,
    ) -> Any:
        """A call of a function whose probe is running: wait for its verdict, briefly."""
        start = perf_counter()
        with anyio.move_on_after(self.policy.probe_wait):
            await profile.probe_done.wait()
        if timeout is not None:
            timeout = max(timeout - (perf_counter() - start), 1e-6)
        if profile.probe_due and not profile.probing:  # that probe was given up: probe again
            return await self._probe(profile, fn, args, timeout)
        kind = profile.kind
        if kind == "inline":
            return await self._inline(profile, fn, args, timeout)
        # still unknown after the wait (a long function): a thread does not pickle anything
        return await self._offload(
            profile, "blocking" if kind == "probing" else kind, fn, args, timeout
        )

    async def _probe(
        self,
        profile: _Profile,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        timeout: float | None,
    ) -> Any:
        profile.probing = True
        profile.probe_due = False
        inner = fn
        while isinstance(inner, functools.partial):  # as function_name() names it
            inner = inner.func
        probe = _Probe(
            unwrap(fn),
            getattr(inner, "__module__", None) or "?",
            getattr(inner, "__qualname__", None) or type(inner).__qualname__,
            self.policy,
        )
        start = perf_counter()
        try:
            # Measured alone: its other calls wait for the verdict, and this waits (briefly) for
            # those in flight and for other probes. Beside them, the spinner would also wait for
            # their threads: for the GIL, or for them to get a core when handed it.
            if profile.kind != "inline" and not await self._quiet(profile):
                probe.overlapped = True
            if timeout is not None:
                timeout = max(timeout - (perf_counter() - start), 1e-6)
            for other in self._probes:
                other.overlapped = probe.overlapped = True
            self._probes.add(probe)
            start = perf_counter()
            return await self._backend("blocking").call(probe, args, timeout=timeout)
        finally:
            latency = perf_counter() - start
            self._probes.discard(probe)
            self._settled()
            profile.probing = False
            profile.calls += 1
            measurement = probe.measurement
            if measurement is None:  # given up before it finished: probe again next time
                profile.probe_due = True
            else:
                self._decide(profile, measurement, latency, probe.inside, probe.overlapped)
            done, profile.probe_done = profile.probe_done, anyio.Event()
            done.set()

    async def _quiet(self, profile: _Profile) -> bool:
        """Wait until no call of this function and no probe runs: whether that came in time."""
        with anyio.move_on_after(self.policy.probe_wait):
            while profile.in_flight or self._probes:
                if self._quieter is None:
                    self._quieter = anyio.Event()
                await self._quieter.wait()
            return True
        return False

    def _settled(self) -> None:
        """An offloaded call or a probe ended: the probes waiting for a quiet moment look again."""
        if self._quieter is not None:
            self._quieter.set()
            self._quieter = None

    # -- measuring and deciding ----------------------------------------------------------------

    def _ewma(self, old: float, new: float, weight: int = 1) -> float:
        if math.isnan(old):
            return new
        keep = (1.0 - self.policy.alpha) ** weight
        return keep * old + (1.0 - keep) * new

    def _cost(self, profile: _Profile, kind: str) -> float:
        """What an offload of this function to ``kind`` costs per call: measured, else assumed."""
        cost = profile.cost.get(kind)
        if cost is not None:
            return cost + profile.send.get(kind, 0.0)
        cost = self._kind_cost.get(kind)
        if cost is not None:
            return cost
        return self.policy.process_cost_prior if kind == "cpu" else math.nan

    def _observe_inline(self, profile: _Profile, elapsed: float) -> None:
        profile.calls += 1
        profile.last_inline = elapsed
        pending = self._pending
        pending.append((profile.name, 0.0, elapsed, elapsed))
        if len(pending) >= 64:
            self.flush()
        profile.run_time = self._ewma(profile.run_time, elapsed)
        policy = self.policy
        budget = policy.inline_budget
        # One slow run may be the machine's (the loop thread was descheduled): two in a row, or
        # an average over the budget (each run counting at most ``inline_margin`` budgets), are
        # the function's.
        profile.strikes = profile.strikes + 1 if elapsed > budget else 0
        profile.inline_load = load = self._ewma(
            profile.inline_load, min(elapsed, budget * policy.inline_margin)
        )
        if profile.probe_due:
            return
        if profile.strikes >= 2:
            profile.probe_due = True
            profile.reason = (
                f"{profile.strikes} runs in a row over the {_duration(budget)} budget on the loop "
                f"(the last {_duration(elapsed)}): its next call is measured in a thread"
            )
        elif load > budget:
            profile.probe_due = True
            profile.reason = (
                f"its runs average over the {_duration(budget)} budget on the loop: its next "
                "call is measured in a thread"
            )

    def _sample(self, profile: _Profile, kind: str) -> None:
        """Fold the calls that finished since the last look into the profile, then review it."""
        entry = self._counters[kind].function_totals(profile.name)
        if entry is None:
            return
        calls, run, overhead = entry
        seen = profile.seen.get(kind, (0, 0.0, 0.0))
        profile.seen[kind] = (calls, run, overhead)
        done = int(calls - seen[0])
        if done <= 0:
            return
        profile.run_time = self._ewma(profile.run_time, (run - seen[1]) / done, done)
        if seen[0]:  # the first calls of a kind may have waited for its workers to start
            cost = (overhead - seen[2]) / done
            profile.cost[kind] = self._ewma(profile.cost.get(kind, math.nan), cost, done)
            self._kind_cost[kind] = self._ewma(self._kind_cost.get(kind, math.nan), cost, done)
        self._review(profile, kind)

    def _review(self, profile: _Profile, kind: str) -> None:
        policy = self.policy
        if profile.probe_due or profile.probing or profile.kind != kind:
            return
        run, cost = profile.run_time, self._cost(profile, kind)
        if run < policy.inline_budget and run < cost:
            self._switch(
                profile,
                "inline",
                f"runs {_duration(run)} in a {_KIND_NAMES[kind]}, less than the offload costs "
                f"({_duration(cost)}) and within the {_duration(policy.inline_budget)} inline budget",
            )
            return
        probed = profile.run_at_probe
        if not math.isnan(probed) and not probed / policy.drift <= run <= probed * policy.drift:
            profile.probe_due = True
            profile.reason += (
                f" (its run time moved from {_duration(probed)} to {_duration(run)}: re-measuring)"
            )
        elif (
            profile.calls_since_probe >= policy.reprobe_calls
            or policy.clock() - profile.probed_at >= policy.reprobe_seconds
        ):
            profile.probe_due = True

    def _decide(
        self,
        profile: _Profile,
        m: Measurement,
        latency: float,
        inside: float,
        overlapped: bool = False,
    ) -> None:
        """Route the function from what its probe measured.

        ``overlapped``: its calls or another probe ran beside it (its GIL reading is not kept).
        """
        policy = self.policy
        profile.probes += 1
        profile.probed_at = policy.clock()
        profile.calls_since_probe = 0
        thread_cost = max(latency - inside, 0.0)
        profile.cost["blocking"] = self._ewma(profile.cost.get("blocking", math.nan), thread_cost)
        self._kind_cost["blocking"] = self._ewma(
            self._kind_cost.get("blocking", math.nan), thread_cost
        )
        cpu_ratio = profile.cpu_ratio = m.cpu_ratio
        if not math.isnan(m.gil_ratio) and not overlapped:
            profile.gil_samples.append(m.gil_ratio)
        samples = profile.gil_samples
        gil = profile.gil_ratio = max(samples) if samples else math.nan
        if cpu_ratio < policy.waits_below:
            target, run = "blocking", m.wall
            why = (
                f"it waits (it computed {cpu_ratio:.0%} as much as a spinning thread beside "
                "it): a thread runs it"
            )
        elif math.isnan(gil):
            target, run = "cpu", m.cpu
            why = (
                f"it computes (CPU {cpu_ratio:.0%} of its run time) but its hold on the GIL was "
                "not measured (it ended before a Python thread beside it competed long enough, "
                "or it could not be measured alone): a process runs it without holding the loop"
            )
        elif gil < policy.gil_from:
            target, run = "blocking", m.wall
            why = (
                f"it computes without the GIL (a Python thread beside it waited for the GIL "
                f"{gil:.0%} of the time): threads run it in parallel"
            )
        else:
            target, run = "cpu", m.cpu
            why = (
                f"it holds the GIL (a Python thread beside it waited for the GIL {gil:.0%} of "
                "the time): processes run it in parallel"
            )
        profile.run_time = profile.run_at_probe = run
        profile.target = target
        cost = self._cost(profile, target)
        if run < policy.inline_budget and run < cost:
            why = (
                f"runs {_duration(run)}, less than a {_KIND_NAMES[target]} offload costs "
                f"({_duration(cost)}), within the {_duration(policy.inline_budget)} inline budget"
            )
            target = "inline"
        self._switch(profile, target, why)
        # It computes: more probes confirm whether it holds the GIL (a loaded machine blurs one;
        # one may end unmeasured). Its calls wait for them as for the first: run beside its
        # calls, a probe measures them too.
        profile.confirming = (
            len(samples) < _GIL_SAMPLES
            and profile.probes < _MAX_FIRST_PROBES
            and cpu_ratio >= policy.waits_below
            and run >= cost
        )
        if profile.confirming:
            profile.probe_due = True

    def _switch(self, profile: _Profile, kind: str, reason: str) -> None:
        profile.reason = reason
        if kind != "inline":
            profile.target = kind
        else:  # its inline runs are judged against what it measured when it came inline
            profile.strikes = 0
            profile.inline_load = profile.run_time
        if kind == profile.kind:
            return
        if profile.kind != "probing":
            profile.previous = profile.kind
        profile.kind = kind
        profile.changes += 1
        profile.changed_at = self.policy.wall_clock()
        counters = self._counters.get(kind)
        entry = counters.function_totals(profile.name) if counters else None
        profile.seen[kind] = entry if entry else (0, 0.0, 0.0)


_KIND_NAMES = {"blocking": "thread", "cpu": "process", "inline": "inline"}

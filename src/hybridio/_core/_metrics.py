"""Counters and latency histograms of a Runtime, and the immutable snapshots ``stats()`` returns.

The histogram is the Prometheus data model (fixed cumulative buckets, a sum and a count) so that it
can be exported as-is; quantiles are estimated by interpolating inside a bucket, like
``histogram_quantile()``. The core may depend on anyio only, which rules out a histogram library.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "DEFAULT_BUCKETS",
    "AutoDecision",
    "FunctionStats",
    "Histogram",
    "HistogramSnapshot",
    "KindCounters",
    "KindStats",
    "RuntimeStats",
]

#: Upper bounds in seconds: 10 us .. 60 s, about three buckets per decade.
DEFAULT_BUCKETS: tuple[float, ...] = (
    1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip


@dataclass(frozen=True)
class HistogramSnapshot:
    """An immutable copy of a histogram: per-bucket counts (not cumulative), sum and count."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]  # len(bounds) + 1: the last is the +Inf bucket
    sum: float
    count: int
    max: float

    def quantile(self, q: float) -> float:
        """Estimate the ``q`` quantile (0..1) by linear interpolation inside its bucket.

        Returns ``nan`` when the histogram is empty.
        """
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile must be between 0 and 1, got {q!r}")
        if self.count == 0:
            return math.nan
        rank = q * self.count
        seen = 0
        lower = 0.0
        for i, n in enumerate(self.counts):
            upper = self.bounds[i] if i < len(self.bounds) else self.max
            if n and seen + n >= rank:
                fraction = (rank - seen) / n
                return min(lower + (max(upper, lower) - lower) * fraction, self.max)
            seen += n
            lower = upper
        return self.max

    @property
    def mean(self) -> float:
        """The mean, or ``nan`` when empty."""
        return self.sum / self.count if self.count else math.nan

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, cumulative count)`` pairs ending with ``(inf, count)``: Prometheus buckets."""
        out: list[tuple[float, int]] = []
        total = 0
        for bound, n in zip((*self.bounds, math.inf), self.counts, strict=True):
            total += n
            out.append((bound, total))
        return out


class Histogram:
    """A fixed-bucket latency histogram (seconds). Not thread-safe: update it from one thread."""

    __slots__ = ("_bounds", "_count", "_counts", "_max", "_sum")

    def __init__(self, bounds: Sequence[float] = DEFAULT_BUCKETS) -> None:
        self._bounds = tuple(bounds)
        if list(self._bounds) != sorted(self._bounds):
            raise ValueError("histogram bounds must be sorted")
        self._counts = [0] * (len(self._bounds) + 1)
        self._sum = 0.0
        self._count = 0
        self._max = 0.0

    def observe(self, value: float) -> None:
        """Record one observation."""
        self._counts[bisect_left(self._bounds, value)] += 1
        self._sum += value
        self._count += 1
        self._max = max(self._max, value)

    def snapshot(self) -> HistogramSnapshot:
        """An immutable copy."""
        return HistogramSnapshot(
            self._bounds, tuple(self._counts), self._sum, self._count, self._max
        )


class _Timings:
    """The four histograms of every offloaded call (queue wait, run time, overhead, latency).

    Recorded together, a batch of calls at a time, because this runs for every call: one loop
    with the updates inline and the running sums and maxima in locals costs a fraction of four
    ``Histogram.observe`` calls per call.
    """

    __slots__ = ("_count", "_counts", "_maxes", "_sums")

    def __init__(self) -> None:
        self._counts = [[0] * (len(DEFAULT_BUCKETS) + 1) for _ in range(4)]
        self._sums = [0.0] * 4
        self._maxes = [0.0] * 4
        self._count = 0

    def observe_many(self, timings: Sequence[tuple[float, float, float, float]]) -> None:
        """Record ``(queue_wait, run_time, overhead, latency)`` for each call."""
        bounds = DEFAULT_BUCKETS
        waits, runs, overheads, latencies = self._counts
        sum_wait, sum_run, sum_overhead, sum_latency = self._sums
        max_wait, max_run, max_overhead, max_latency = self._maxes
        for queue_wait, run_time, overhead, latency in timings:
            waits[bisect_left(bounds, queue_wait)] += 1
            runs[bisect_left(bounds, run_time)] += 1
            overheads[bisect_left(bounds, overhead)] += 1
            latencies[bisect_left(bounds, latency)] += 1
            sum_wait += queue_wait
            sum_run += run_time
            sum_overhead += overhead
            sum_latency += latency
            # `if` rather than max(): a call less per update on the hot path
            if queue_wait > max_wait:  # noqa: PLR1730
                max_wait = queue_wait
            if run_time > max_run:  # noqa: PLR1730
                max_run = run_time
            if overhead > max_overhead:  # noqa: PLR1730
                max_overhead = overhead
            if latency > max_latency:  # noqa: PLR1730
                max_latency = latency
        self._sums = [sum_wait, sum_run, sum_overhead, sum_latency]
        self._maxes = [max_wait, max_run, max_overhead, max_latency]
        self._count += len(timings)

    def observe_batch(
        self, waits: list[float], runs: list[float], overhead: float, latencies: list[float]
    ) -> None:
        """Record a batch: each call's queue wait, run time and latency; one overhead for all.

        The dispatcher's path, once per batch: per call only a bisect per histogram; sums and
        maxima are taken by the C builtins over the lists.
        """
        bounds = DEFAULT_BUCKETS
        count_wait, count_run, count_overhead, count_latency = self._counts
        for value in waits:
            count_wait[bisect_left(bounds, value)] += 1
        for value in runs:
            count_run[bisect_left(bounds, value)] += 1
        for value in latencies:
            count_latency[bisect_left(bounds, value)] += 1
        n = len(runs)
        count_overhead[bisect_left(bounds, overhead)] += n
        sums = self._sums
        sums[0] += sum(waits)
        sums[1] += sum(runs)
        sums[2] += overhead * n
        sums[3] += sum(latencies)
        maxes = self._maxes
        maxes[0] = max(maxes[0], *waits)
        maxes[1] = max(maxes[1], *runs)
        maxes[2] = max(maxes[2], overhead)
        maxes[3] = max(maxes[3], *latencies)
        self._count += n

    def snapshots(self) -> list[HistogramSnapshot]:
        """Immutable copies: queue wait, run time, overhead, latency."""
        return [
            HistogramSnapshot(DEFAULT_BUCKETS, tuple(counts), total, self._count, peak)
            for counts, total, peak in zip(self._counts, self._sums, self._maxes, strict=True)
        ]


@dataclass(frozen=True)
class FunctionStats:
    """Where the time of one function's offloaded calls went.

    ``run_seconds`` is time spent running the function in the worker; ``overhead_seconds`` is
    everything else the offload added (queue wait excluded): serialisation, transport, hand-offs.
    """

    calls: int
    run_seconds: float
    overhead_seconds: float

    @property
    def offload_paid_off(self) -> bool:
        """False when moving the work cost more than the work itself: consider running it inline."""
        return self.run_seconds >= self.overhead_seconds


@dataclass(frozen=True)
class KindStats:
    """A snapshot of one offload kind (``inline``, ``blocking`` or ``cpu``)."""

    kind: str
    calls: int
    completed: int
    errors: int
    timeouts: int
    cancelled: int
    crashes: int
    rejected: int
    in_flight: int
    queued: int
    batches: int
    batched_calls: int
    abandoned: int
    abandoned_running: int
    workers: int
    worker_restarts: int
    start_failures: int
    broken: bool
    queue_wait: HistogramSnapshot
    run_time: HistogramSnapshot
    overhead: HistogramSnapshot
    latency: HistogramSnapshot
    functions: dict[str, FunctionStats] = field(default_factory=dict)


@dataclass(frozen=True)
class AutoDecision:
    """Where ``kind="auto"`` sends one function's calls, and the measurements behind it.

    ``kind`` is ``"inline"``, ``"blocking"`` (a thread) or ``"cpu"`` (a process), or ``"probing"``
    before the first measurement. Times are in seconds; a ratio not measured yet is ``nan``.
    ``run_time`` is a moving average of the function's run time; ``offload_cost`` what an offload
    to the kind it would go to costs per call; ``cpu_ratio`` how much it computes (its CPU time
    against a spinning Python thread's beside it: near 0 it waits, near 1 it computes);
    ``gil_ratio`` how far it and that Python thread were kept from computing at the same time
    (near 1: it holds the GIL, near 0: it releases it). ``changed_at`` is the wall-clock time
    (``time.time()``) of the last change of ``kind``.
    """

    function: str
    kind: str
    reason: str
    run_time: float
    offload_cost: float
    cpu_ratio: float
    gil_ratio: float
    calls: int
    probes: int
    changes: int
    changed_at: float
    previous: str | None = None


@dataclass(frozen=True)
class RuntimeStats:
    """A snapshot of a Runtime: one ``KindStats`` per kind, in ``kinds``.

    ``auto`` explains, per function name, where ``kind="auto"`` routes its calls and why.
    """

    kinds: dict[str, KindStats]
    auto: dict[str, AutoDecision] = field(default_factory=dict)

    def __getitem__(self, kind: str) -> KindStats:
        return self.kinds[kind]


_MAX_TRACKED_FUNCTIONS = 256


class KindCounters:
    """The live, mutable counters behind ``KindStats``; owned by the runtime, updated on its loop."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.calls = 0
        self.completed = 0
        self.errors = 0
        self.timeouts = 0
        self.cancelled = 0
        self.crashes = 0
        self.rejected = 0
        self.in_flight = 0
        self.queued = 0
        self.batches = 0
        self.batched_calls = 0
        self.abandoned = 0
        self.abandoned_running = 0
        self.workers = 0
        self.worker_restarts = 0
        self.start_failures = 0
        self.broken = False
        self._timings = _Timings()
        self._functions: dict[str, list[float]] = {}

    def record_timing(
        self, function: str, queue_wait: float, run_time: float, latency: float
    ) -> None:
        """Record one finished call: ``latency`` is end-to-end, including ``queue_wait``."""
        self.record_timings([(function, queue_wait, run_time, latency)])

    def record_timings(self, calls: Sequence[tuple[str, float, float, float]]) -> None:
        """Record finished calls, each ``(function, queue_wait, run_time, latency)``."""
        functions = self._functions
        timings: list[tuple[float, float, float, float]] = []
        for function, queue_wait, run_time, latency in calls:
            overhead = max(latency - queue_wait - run_time, 0.0)
            timings.append((queue_wait, run_time, overhead, latency))
            entry = functions.get(function)
            if entry is None:
                if len(functions) >= _MAX_TRACKED_FUNCTIONS:
                    continue
                entry = functions[function] = [0, 0.0, 0.0]
            entry[0] += 1
            entry[1] += run_time
            entry[2] += overhead
        self._timings.observe_many(timings)

    def record_batch(
        self, waits: list[float], runs: list[float], overhead: float, latencies: list[float]
    ) -> None:
        """Record the timings of a finished batch (see ``record_function`` for its functions)."""
        self._timings.observe_batch(waits, runs, overhead, latencies)

    def record_function(self, function: str, calls: int, run_time: float, overhead: float) -> None:
        """Add finished calls of one function: their count, run time and overhead in seconds."""
        entry = self._functions.get(function)
        if entry is None:
            if len(self._functions) >= _MAX_TRACKED_FUNCTIONS:
                return
            entry = self._functions[function] = [0, 0.0, 0.0]
        entry[0] += calls
        entry[1] += run_time
        entry[2] += overhead

    def function_totals(self, function: str) -> tuple[int, float, float] | None:
        """``(calls, run seconds, overhead seconds)`` of one function so far, if it is tracked."""
        entry = self._functions.get(function)
        return None if entry is None else (int(entry[0]), entry[1], entry[2])

    def snapshot(self) -> KindStats:
        """An immutable copy."""
        queue_wait, run_time, overhead, latency = self._timings.snapshots()
        return KindStats(
            kind=self.kind,
            calls=self.calls,
            completed=self.completed,
            errors=self.errors,
            timeouts=self.timeouts,
            cancelled=self.cancelled,
            crashes=self.crashes,
            rejected=self.rejected,
            in_flight=self.in_flight,
            queued=self.queued,
            batches=self.batches,
            batched_calls=self.batched_calls,
            abandoned=self.abandoned,
            abandoned_running=self.abandoned_running,
            workers=self.workers,
            worker_restarts=self.worker_restarts,
            start_failures=self.start_failures,
            broken=self.broken,
            queue_wait=queue_wait,
            run_time=run_time,
            overhead=overhead,
            latency=latency,
            functions={
                name: FunctionStats(int(calls), run, overhead)
                for name, (calls, run, overhead) in self._functions.items()
            },
        )

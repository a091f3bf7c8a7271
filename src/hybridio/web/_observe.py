"""What the server tells about itself: loop lag for ``/healthz`` and Prometheus text for ``/metrics``.

The runtime's metrics and the loop lag come from hybridio's own exporter and ``LoopMonitor`` when
this version has them; until then a heartbeat and a small collector stand in, each behind one
function here so that switching is a one-line change.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Iterator
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from .._core._runtime import Runtime
from ._admission import Admission

__all__ = ["Heartbeat", "LagSource", "metrics_text"]


class LagSource(Protocol):
    """Anything that can say how late the event loop is running now, in seconds."""

    def current_lag(self) -> float: ...


class Heartbeat:
    """Loop lag from a heartbeat task: how late each ``interval`` sleep woke up.

    ``current_lag()`` is the worst lag of the last ``window`` seconds, or how overdue the next
    beat is when the loop is still blocked, so one long block keeps ``/healthz`` red for a window.
    """

    def __init__(self, interval: float = 0.05, window: float = 2.0) -> None:
        self.interval = interval
        self.window = window
        self._lags: deque[tuple[float, float]] = deque()
        self._due = math.inf
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the heartbeat task on the running loop."""
        self._task = asyncio.get_running_loop().create_task(self._beat(), name="hybridio lag")

    async def stop(self) -> None:
        """Stop the heartbeat task."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _beat(self) -> None:
        while True:
            self._due = time.monotonic() + self.interval
            await asyncio.sleep(self.interval)
            now = time.monotonic()
            self._lags.append((now, max(0.0, now - self._due)))
            while self._lags and self._lags[0][0] < now - self.window:
                self._lags.popleft()

    def current_lag(self) -> float:
        """The worst lag of the last window (seconds), counting a beat that is overdue now."""
        now = time.monotonic()
        overdue = max(0.0, now - self._due) if math.isfinite(self._due) else 0.0
        recent = (lag for at, lag in self._lags if at >= now - self.window)
        return max(overdue, *recent) if self._lags else overdue


class _Collector:
    """A prometheus_client collector reading the runtime, the admission gates and the lag."""

    def __init__(self, runtime: Runtime, admission: Admission, lag: LagSource | None) -> None:
        self.runtime = runtime
        self.admission = admission
        self.lag = lag

    def collect(self) -> Iterator[Metric]:
        yield from _runtime_metrics(self.runtime)
        gates = self.admission.gates.values()
        families: list[tuple[str, str, type[Any], str]] = [
            ("hybridio_web_in_flight", "Requests holding an admission slot", GaugeMetricFamily, "in_flight"),
            ("hybridio_web_waiting", "Requests queued for an admission slot", GaugeMetricFamily, "waiting"),
            ("hybridio_web_admitted", "Requests admitted", CounterMetricFamily, "admitted"),
            ("hybridio_web_rejected", "Requests refused with 503", CounterMetricFamily, "rejected"),
        ]  # fmt: skip
        for name, doc, family_type, attribute in families:
            family = family_type(name, doc, labels=["kind"])
            for gate in gates:
                family.add_metric([gate.kind], float(getattr(gate, attribute)))
            yield family
        if self.lag is not None:
            yield GaugeMetricFamily(
                "hybridio_loop_lag_seconds",
                "Worst event-loop lag of the recent window",
                value=self.lag.current_lag(),
            )


def _runtime_metrics(runtime: Runtime) -> Iterator[Metric]:
    # Stands in for hybridio's own exporter (hybridio.prometheus_text) until it exists.
    stats = runtime.stats()
    kinds = ("inline", "blocking", "cpu")
    counters = ("calls", "completed", "errors", "timeouts", "cancelled", "crashes", "rejected")
    for field in counters:
        family = CounterMetricFamily(
            f"hybridio_{field}", f"Offloaded calls: {field}", labels=["kind"]
        )
        for kind in kinds:
            family.add_metric([kind], float(getattr(stats[kind], field)))
        yield family
    for field in ("in_flight", "queued", "workers"):
        gauge = GaugeMetricFamily(f"hybridio_{field}", f"Offloaded calls: {field}", labels=["kind"])
        for kind in kinds:
            gauge.add_metric([kind], float(getattr(stats[kind], field)))
        yield gauge
    histogram = HistogramMetricFamily(
        "hybridio_latency_seconds", "Offloaded call latency, queue wait included", labels=["kind"]
    )
    for kind in kinds:
        snapshot = stats[kind].latency
        buckets = [(_bound(bound), float(count)) for bound, count in snapshot.cumulative()]
        histogram.add_metric([kind], buckets, snapshot.sum)
    yield histogram


def _bound(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(bound)


def metrics_text(runtime: Runtime, admission: Admission, lag: LagSource | None) -> str:
    """Prometheus text exposition of the runtime, the admission gates and the loop lag."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(runtime, admission, lag))
    return generate_latest(registry).decode()

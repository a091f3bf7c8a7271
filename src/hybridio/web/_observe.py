"""What the server tells about itself: loop lag for ``/healthz``, Prometheus text for ``/metrics``.

The runtime's and the loop's numbers come from ``hybridio.prometheus_text`` and ``LoopMonitor``;
this module adds the admission gates' numbers and the health rule.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from .._export import prometheus_text
from .._monitor._loop_monitor import LoopMonitor
from .._runtime._runtime import Runtime
from ._admission import Admission

__all__ = ["ConnectionCounts", "HybridioCollector", "metrics_text", "recent_lag"]


class _HasMetrics(Protocol):
    def metrics(self) -> str: ...


class ConnectionCounts(Protocol):
    """What a server's connection guard counts (``hybridio.web.serve``)."""

    max_connections: int
    open: int
    refused: int
    evicted: int
    timed_out: int


class _ConnectionCollector:
    """A prometheus_client collector reading a server's connection guard."""

    def __init__(self, connections: ConnectionCounts) -> None:
        self.connections = connections

    def collect(self) -> Iterator[Metric]:
        counts = self.connections
        yield GaugeMetricFamily(
            "hybridio_web_connections", "Open client connections", value=counts.open
        )
        yield GaugeMetricFamily(
            "hybridio_web_max_connections",
            "Open client connections allowed at once",
            value=counts.max_connections,
        )
        closed = CounterMetricFamily(
            "hybridio_web_connections_closed",
            "Connections closed by the server's bounds: refused (503 at the cap), evicted (at "
            "the cap, no request head yet), header_timeout (no complete request head in time)",
            labels=["reason"],
        )
        closed.add_metric(["refused"], counts.refused)
        closed.add_metric(["evicted"], counts.evicted)
        closed.add_metric(["header_timeout"], counts.timed_out)
        yield closed


class _AdmissionCollector:
    """A prometheus_client collector reading the admission gates."""

    def __init__(self, admission: Admission) -> None:
        self.admission = admission

    def collect(self) -> Iterator[Metric]:
        gates = self.admission.gates.values()
        gauges = (
            ("hybridio_web_in_flight", "Requests holding an admission slot", "in_flight"),
            ("hybridio_web_waiting", "Requests queued for an admission slot", "waiting"),
        )
        for name, doc, attribute in gauges:
            gauge = GaugeMetricFamily(name, doc, labels=["kind"])
            for gate in gates:
                gauge.add_metric([gate.kind], float(getattr(gate, attribute)))
            yield gauge
        counters = (
            ("hybridio_web_admitted", "Requests admitted", "admitted"),
            (
                "hybridio_web_rejected",
                "Requests refused with 503 (no slot, queue full)",
                "rejected",
            ),
        )
        for name, doc, attribute in counters:
            counter = CounterMetricFamily(name, doc, labels=["kind"])
            for gate in gates:
                counter.add_metric([gate.kind], float(getattr(gate, attribute)))
            yield counter


def metrics_text(
    runtime: Runtime,
    monitor: LoopMonitor,
    admission: Admission,
    connections: ConnectionCounts | None = None,
) -> str:
    """Prometheus text of the runtime, the loop monitor, the admission gates and connections."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_AdmissionCollector(admission))
    if connections is not None:
        registry.register(_ConnectionCollector(connections))
    return prometheus_text(runtime, monitor) + generate_latest(registry).decode()


class HybridioCollector:
    """A ``prometheus_client`` collector: a hybridio server's metrics in the user's registry.

    Every scrape reads the runtime's stats, the loop monitor and the admission gates, the same
    families ``/metrics`` serves (``hybridio_*``, ``hybridio_loop_*``, ``hybridio_web_*``).

    Example::

        from prometheus_client import REGISTRY
        hybridio.web.setup(app, metrics_path=None)      # the app serves its own /metrics
        REGISTRY.register(hybridio.web.HybridioCollector(app[hybridio.web.HYBRID]))
    """

    def __init__(self, hybrid: _HasMetrics) -> None:
        self._hybrid = hybrid

    def collect(self) -> Iterator[Metric]:
        """The current metrics (called by the registry on every scrape)."""
        yield from text_string_to_metric_families(self._hybrid.metrics())


def recent_lag(monitor: LoopMonitor, window: float) -> float:
    """The loop's lag now, or the longest block that ended in the last ``window`` seconds.

    One long block keeps the server unhealthy for a window instead of flapping back at once.
    """
    since = time.time() - window
    blocks = [b.duration for b in monitor.report().blocks if b.start + b.duration >= since]
    return max([monitor.current_lag, *blocks])

"""Prometheus text exposition of a Runtime's stats and a LoopMonitor's lag and blocks.

``prometheus_client`` renders the text when it is installed (the ``web`` extra); otherwise the same
families are written in the text format (version 0.0.4) here, so the core needs nothing but anyio.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from ._core._metrics import HistogramSnapshot, KindStats
from ._monitor._loop_monitor import LoopMonitor
from ._runtime._default import runtime_in_use
from ._runtime._runtime import Runtime

__all__ = ["CONTENT_TYPE", "prometheus_text"]

#: The HTTP Content-Type of ``prometheus_text()``'s output.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_COUNTERS: tuple[tuple[str, str], ...] = (
    ("calls", "Calls submitted"),
    ("completed", "Calls that returned a result"),
    ("errors", "Calls that raised (the function's own exception or an offload error)"),
    ("timeouts", "Calls that hit their timeout"),
    ("cancelled", "Calls cancelled by their caller"),
    ("crashes", "Worker crashes"),
    ("rejected", "Calls refused because the queue was full (Overloaded)"),
    ("batches", "Round trips that carried a batch of calls"),
    ("batched_calls", "Calls that travelled in a batch"),
    ("abandoned", "Thread calls abandoned by their caller (threads cannot be killed)"),
    ("worker_restarts", "Workers replaced"),
    ("start_failures", "Workers that could not start (initializer or main module raised)"),
)
_GAUGES: tuple[tuple[str, str], ...] = (
    ("in_flight", "Calls running now"),
    ("queued", "Calls waiting for a worker now"),
    ("abandoned_running", "Abandoned thread calls still running"),
    ("workers", "Live workers"),
    ("broken", "1 while the pool fails calls at once because its workers cannot start"),
)
_HISTOGRAMS: tuple[tuple[str, str], ...] = (
    ("queue_wait", "Seconds a call waited for a worker"),
    ("run_time", "Seconds the function ran in the worker"),
    ("overhead", "Seconds the offload added beyond queue wait and run time"),
    ("latency", "Seconds from submission to result"),
)

Labels = tuple[tuple[str, str], ...]


@dataclass
class _Family:
    # ``name`` is the base name: counters get "_total" when rendered, like prometheus_client.
    name: str
    type: Literal["counter", "gauge", "histogram"]
    help: str
    samples: list[tuple[Labels, float]] = field(default_factory=list)
    histograms: list[tuple[Labels, HistogramSnapshot]] = field(default_factory=list)


def prometheus_text(runtime: Runtime | None = None, monitor: LoopMonitor | None = None) -> str:
    """The Prometheus text exposition of a Runtime's stats and a LoopMonitor's numbers.

    Per kind (label ``kind``): call counters, gauges, and histograms of queue wait, run time,
    overhead and latency (``hybridio_*``); for the monitor, the loop lag histogram, block
    counters and the current lag (``hybridio_loop_*``). Serve it with ``CONTENT_TYPE``.

    Args:
        runtime: the Runtime to export; default: the one in use (the enclosing
            ``async with Runtime()``, else the default runtime if one was started), if any.
        monitor: the LoopMonitor to export, if any.

    Example::

        body = hybridio.prometheus_text(runtime, monitor)
    """
    if runtime is None:
        runtime = runtime_in_use()
    families = [*(_runtime_families(runtime) if runtime is not None else ())]
    if monitor is not None:
        families.extend(_monitor_families(monitor))
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return _render(families)
    return _render_with_client(families)


def _runtime_families(runtime: Runtime) -> list[_Family]:
    kinds: list[KindStats] = list(runtime.stats().kinds.values())
    families: list[_Family] = []
    for attr, help_text in _COUNTERS:
        family = _Family(f"hybridio_{attr}", "counter", help_text)
        family.samples = [((("kind", k.kind),), float(getattr(k, attr))) for k in kinds]
        families.append(family)
    for attr, help_text in _GAUGES:
        family = _Family(f"hybridio_{attr}", "gauge", help_text)
        family.samples = [((("kind", k.kind),), float(getattr(k, attr))) for k in kinds]
        families.append(family)
    for attr, help_text in _HISTOGRAMS:
        family = _Family(f"hybridio_{attr}_seconds", "histogram", help_text)
        family.histograms = [((("kind", k.kind),), getattr(k, attr)) for k in kinds]
        families.append(family)
    per_function = [
        _Family("hybridio_function_calls", "counter", "Finished calls per function"),
        _Family("hybridio_function_run_seconds", "counter", "Seconds run per function"),
        _Family("hybridio_function_overhead_seconds", "counter", "Offload overhead per function"),
    ]
    for k in kinds:
        for name, f in k.functions.items():
            labels = (("kind", k.kind), ("function", name))
            per_function[0].samples.append((labels, float(f.calls)))
            per_function[1].samples.append((labels, f.run_seconds))
            per_function[2].samples.append((labels, f.overhead_seconds))
    families.extend(per_function)
    return families


def _monitor_families(monitor: LoopMonitor) -> list[_Family]:
    report = monitor.report()
    return [
        _Family(
            "hybridio_loop_lag_seconds",
            "histogram",
            "Event-loop lag measured by each heartbeat",
            histograms=[((), report.lag)],
        ),
        _Family(
            "hybridio_loop_blocks",
            "counter",
            "Times the loop was late past the threshold",
            samples=[((), float(report.total_blocks))],
        ),
        _Family(
            "hybridio_loop_blocked_seconds",
            "counter",
            "Seconds the loop was blocked past the threshold, summed",
            samples=[((), report.blocked_seconds)],
        ),
        _Family(
            "hybridio_loop_current_lag_seconds",
            "gauge",
            "Event-loop lag now",
            samples=[((), monitor.current_lag)],
        ),
        _Family(
            "hybridio_loop_threshold_seconds",
            "gauge",
            "Lag past which the loop counts as blocked",
            samples=[((), monitor.threshold)],
        ),
    ]


# -- rendering ------------------------------------------------------------------------------


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return repr(float(value))


def _buckets(snapshot: HistogramSnapshot) -> list[tuple[str, float]]:
    return [(_number(bound), float(count)) for bound, count in snapshot.cumulative()]


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _labels(labels: Sequence[tuple[str, str]]) -> str:
    if not labels:
        return ""
    # Sorted, as prometheus_client writes them, so both renderers give the same text.
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels)) + "}"


def _lines(family: _Family) -> Iterator[str]:
    name = family.name + "_total" if family.type == "counter" else family.name
    help_text = family.help.replace("\\", r"\\").replace("\n", r"\n")
    yield f"# HELP {name} {help_text}"
    yield f"# TYPE {name} {family.type}"
    for labels, value in family.samples:
        yield f"{name}{_labels(labels)} {_number(value)}"
    for labels, snapshot in family.histograms:
        for le, count in _buckets(snapshot):
            yield f"{name}_bucket{_labels((*labels, ('le', le)))} {_number(count)}"
        yield f"{name}_count{_labels(labels)} {_number(float(snapshot.count))}"
        yield f"{name}_sum{_labels(labels)} {_number(snapshot.sum)}"


def _render(families: Sequence[_Family]) -> str:
    return "".join(line + "\n" for family in families for line in _lines(family))


def _render_with_client(families: Sequence[_Family]) -> str:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
    )

    def convert(family: _Family) -> Metric:
        names = _label_names(family)
        metric: CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily
        if family.type == "counter":
            metric = CounterMetricFamily(family.name, family.help, labels=names)
        elif family.type == "gauge":
            metric = GaugeMetricFamily(family.name, family.help, labels=names)
        else:
            metric = HistogramMetricFamily(family.name, family.help, labels=names)
            for labels, snapshot in family.histograms:
                metric.add_metric([v for _, v in labels], _buckets(snapshot), snapshot.sum)
            return metric
        for labels, value in family.samples:
            metric.add_metric([v for _, v in labels], value)
        return metric

    class _Collector:
        def collect(self) -> Iterator[Metric]:
            return (convert(family) for family in families)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector())
    return str(generate_latest(registry).decode("utf-8"))


def _label_names(family: _Family) -> list[str]:
    rows = family.samples or family.histograms
    if rows:
        return [k for k, _ in rows[0][0]]
    # An empty family still declares its labels: what prometheus_client expects to be told.
    return ["kind", "function"] if family.name.startswith("hybridio_function_") else ["kind"]

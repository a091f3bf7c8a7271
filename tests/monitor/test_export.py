"""prometheus_text: the Prometheus exposition of a Runtime and a LoopMonitor, parsed back."""

from __future__ import annotations

import operator
import sys
import time

import anyio
import pytest
from prometheus_client.parser import text_string_to_metric_families

import hybridio
from hybridio import _export
from hybridio.monitor import LoopMonitor

from ._sampling import sampled

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _samples(text: str) -> tuple[dict[str, str], Samples]:
    types: dict[str, str] = {}
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return types, samples


def _hippo_stalls_the_loop(monitor: LoopMonitor) -> None:
    time.sleep(0.08)
    while not sampled(monitor):  # a watchdog starved of CPU may wake late
        time.sleep(0.005)


async def _exercise() -> tuple[hybridio.Runtime, LoopMonitor]:
    async with (
        hybridio.Runtime(cpu_workers=1, threads=2) as runtime,
        LoopMonitor(threshold=0.04) as monitor,
    ):
        assert await runtime.run_cpu(operator.mul, 6, 7) == 42
        for i in range(3):
            await runtime.run_blocking(operator.add, i, 1)
        await runtime.run(operator.neg, 1, kind="inline")
        await anyio.sleep(0.02)
        _hippo_stalls_the_loop(monitor)
        await anyio.sleep(0.02)
    return runtime, monitor


@pytest.mark.anyio
async def test_text_parses_with_per_kind_counters_and_histograms() -> None:
    runtime, monitor = await _exercise()
    types, samples = _samples(hybridio.prometheus_text(runtime, monitor))
    assert types["hybridio_calls"] == "counter"
    assert types["hybridio_queue_wait_seconds"] == "histogram"
    assert types["hybridio_run_time_seconds"] == "histogram"
    assert types["hybridio_in_flight"] == "gauge"
    assert types["hybridio_loop_lag_seconds"] == "histogram"
    assert samples[("hybridio_calls_total", (("kind", "blocking"),))] == 3
    assert samples[("hybridio_completed_total", (("kind", "cpu"),))] == 1
    assert samples[("hybridio_run_time_seconds_count", (("kind", "blocking"),))] == 3
    inf_bucket = ("hybridio_queue_wait_seconds_bucket", (("kind", "cpu"), ("le", "+Inf")))
    assert samples[inf_bucket] == 1
    for kind in ("inline", "blocking", "cpu"):
        for name in ("queue_wait", "run_time", "overhead", "latency"):
            assert (f"hybridio_{name}_seconds_sum", (("kind", kind),)) in samples
    add_labels = (("function", "_operator.add"), ("kind", "blocking"))
    assert samples[("hybridio_function_calls_total", add_labels)] == 3
    report = monitor.report()
    assert samples[("hybridio_loop_lag_seconds_count", ())] == report.heartbeats
    assert samples[("hybridio_loop_blocks_total", ())] == report.total_blocks
    # Starting the worker process may be late too on a loaded machine: only ours is certain.
    assert "_hippo_stalls_the_loop" in {b.culprit.function for b in report.blocks if b.culprit}
    assert samples[("hybridio_loop_blocked_seconds_total", ())] == report.blocked_seconds
    assert samples[("hybridio_loop_threshold_seconds", ())] == 0.04


@pytest.mark.anyio
async def test_the_text_format_is_written_the_same_without_prometheus_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runtime, monitor = await _exercise()
    with_client = hybridio.prometheus_text(runtime, monitor)
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # import fails
    by_hand = hybridio.prometheus_text(runtime, monitor)
    assert by_hand == with_client
    assert by_hand.endswith("\n")


@pytest.mark.anyio
async def test_defaults_to_the_runtime_in_use() -> None:
    async with hybridio.Runtime(cpu_workers=1) as runtime:
        await runtime.run_blocking(operator.add, 1, 2)
        _, samples = _samples(hybridio.prometheus_text())
    assert samples[("hybridio_calls_total", (("kind", "blocking"),))] == 1


def test_nothing_to_export_outside_an_event_loop() -> None:
    assert hybridio.prometheus_text() == ""


def test_label_values_are_escaped(monkeypatch: pytest.MonkeyPatch) -> None:
    family = _export._Family("x_calls", "counter", 'help with \\ and\nnewline "quoted"')
    family.samples = [((("function", 'we"ird\\name\n'),), 2.0)]
    texts = [_export._render([family]), _export._render_with_client([family])]
    for text in texts:
        ((name, labels), value), *_ = _samples(text)[1].items()
        assert (name, labels, value) == ("x_calls_total", (("function", 'we"ird\\name\n'),), 2.0)
    assert texts[0] == texts[1]

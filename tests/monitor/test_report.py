"""The report types: their numbers and their readable summary."""

from __future__ import annotations

import math

from hybridio._core._metrics import Histogram
from hybridio.monitor import BlockEvent, LoopReport, StackFrame


def _report(blocks: tuple[BlockEvent, ...], lags: tuple[float, ...] = (0.001, 0.002)) -> LoopReport:
    histogram = Histogram()
    for lag in lags:
        histogram.observe(lag)
    return LoopReport(
        threshold=0.05,
        interval=0.01,
        elapsed=1.5,
        lag=histogram.snapshot(),
        blocks=blocks,
        total_blocks=len(blocks),
        blocked_seconds=sum(b.duration for b in blocks),
    )


def _block(cause: str, culprit: StackFrame | None, offset: float = 0.5) -> BlockEvent:
    return BlockEvent(
        start=1000.0 + offset,
        offset=offset,
        duration=0.25,
        cause=cause,  # type: ignore[arg-type]
        culprit=culprit,
        stack='File "/srv/app.py", line 7, in parse\n  json.loads(body)\n' if culprit else "",
    )


def test_summary_names_culprits_and_causes() -> None:
    parse = StackFrame("/srv/app.py", 7, "parse", "app", "json.loads(body)")
    report = _report(
        (
            _block("code", parse),
            _block("code", parse, 0.9),
            _block("stall", None, 1.1),
            _block("unknown", None, 1.2),
        )
    )
    text = str(report)
    assert "Loop health over 1.50 s (threshold 50 ms, heartbeat every 10 ms)" in text
    assert "2 heartbeats" in text
    assert "blocks: 4, 1000.0 ms blocked in total" in text
    assert "2 x /srv/app.py:7 parse" in text
    assert "+0.500s blocked 250.0 ms in /srv/app.py:7 parse  (json.loads(body))" in text
    assert "with no code of yours holding it (loop thread on a CPU 0.0 ms: a busy machine?)" in text
    assert "could not be sampled" in text
    assert report.culprits() == {"/srv/app.py:7 parse": 2}


def test_the_evidence_is_in_the_summary_of_unblamed_blocks() -> None:
    stall = BlockEvent(1.0, 0.5, 0.3, "stall", None, "", cpu_time=0.002, cpu_wait=0.29)
    assert str(stall) == (
        "+0.500s blocked 300.0 ms with no code of yours holding it "
        "(loop thread on a CPU 2.0 ms, waiting for a CPU 290.0 ms: a busy machine?)"
    )
    unknown = BlockEvent(1.0, 0.5, 0.3, "unknown", None, "", cpu_time=0.25)
    assert "stack could not be sampled (loop thread on a CPU 250.0 ms: a C call" in str(unknown)


def test_quantiles_and_empty_report() -> None:
    report = _report((), lags=(0.001,) * 98 + (0.2, 0.3))
    assert report.heartbeats == 100
    assert report.p50 <= 0.001
    assert report.max == 0.3
    assert 0.1 <= report.p99 <= 0.3
    empty = _report((), lags=())
    assert math.isnan(empty.p50)
    assert "p50 n/a" in str(empty)

"""What bench-b's scenarios share: rows from per-repeat quantities, helper processes."""

from __future__ import annotations

import math
import sys
import time

from hybridio.bench._harness import free_port, measure_tree, rows, running
from hybridio.bench._model import Rule


def test_rows_pair_each_repeat_and_leave_out_the_unmeasured() -> None:
    measured = {
        "a": [2.0, 4.0, math.nan, 6.0, 8.0, 10.0, 12.0],
        "b": [1.0, 2.0, 3.0, 3.0, 4.0, 5.0, 6.0],
    }
    now = time.monotonic()
    plan = [("a vs b", "b", Rule(1.5, target=True)), ("b", None, None)]
    paired, alone = rows("test", measured, (now, now), plan, lambda name: "s")
    assert paired.values == [2.0, 4.0, 6.0, 8.0, 10.0, 12.0]
    assert paired.baseline_values == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert paired.ratio == 2.0
    assert paired.verdict == "met"  # every paired ratio is 2.0: the interval clears 1.5x
    assert "1 repeat(s) without a measurement left out" in paired.note
    assert alone.baseline is None
    assert alone.repeats == 7
    assert alone.unit == "s"


def test_a_helper_process_runs_for_the_block_and_is_stopped() -> None:
    port = free_port()
    command = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)]
    with running(command, listen=port) as process:
        assert process.poll() is None
    assert process.returncode is not None


def test_a_measured_command_reports_its_time_and_memory() -> None:
    seconds, cpu, peak = measure_tree([sys.executable, "-c", "sum(range(10**6))"])
    assert seconds > 0
    assert cpu > 0
    assert peak >= 0

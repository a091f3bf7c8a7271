"""``hybridio bench server`` in its seconds-long mode: every part runs, rows carry their units."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import psutil

from hybridio.bench._model import BenchContext
from hybridio.bench._server import _Server, parse_wrk, run

WRK = """\
Running 1s test @ http://127.0.0.1:8000/cpu?ms=20
  1 threads and 4 connections
  Latency Distribution
     50%    1.20ms
     75%    3.00ms
     90%    5.00ms
     99%   15.50ms
  200 requests in 2.00s, 30.00KB read
  Non-2xx or 3xx responses: 50
Requests/sec:    100.00
"""


def test_wrk_output_is_read_in_milliseconds_and_rates() -> None:
    assert parse_wrk(WRK) == {"seconds": 2.0, "ok": 75.0, "503": 25.0, "p50": 1.2, "p99": 15.5}


def test_cpu_is_split_between_the_loop_and_the_rest() -> None:
    burn = threading.Thread(target=sum, args=(range(3_000_000),))  # CPU off the main thread
    burn.start()
    burn.join()
    loop, rest = _Server("plain+pool", "", psutil.Process()).cpu()
    assert loop > 0
    assert rest > 0  # the thread's time stays with the process after it ended
    # The multi-process server's processes all run a loop: nothing is "the rest".
    assert _Server("multi-process", "", psutil.Process()).cpu()[1] == 0.0


def test_server_scenario_tiny(tmp_path: Path) -> None:
    result = run(BenchContext(out=tmp_path, tiny=True))
    rows = {row.name: row for row in result.rows}
    idle = rows["/io p99, idle"]
    assert idle.value > 0
    assert idle.unit == "ms"
    process = rows["/io p99 under /cpu process load"]
    assert process.baseline_value == idle.value
    assert process.verdict == "inconclusive"  # one repeat decides nothing
    assert "too few repeats" in process.reason
    ok = rows["hybridio at 16 connections: ok req/s"]
    assert ok.baseline == "plain+pool at 16 connections: ok req/s"
    assert "CPU of one core" in ok.note
    assert rows["/cpu process throughput"].value > 0
    assert rows["/cpu inline throughput"].baseline is None
    refused = rows["overload: 503 latency p99"]
    # Whether 4x the measured capacity gets refusals in a one-second tiny run depends on the
    # machine (on a busy one the capacity, and so the rate, is low): the share is always said.
    assert re.search(r"\d+% refused with 503", refused.note), refused.note
    memory = rows["overload: server + workers RSS after"]
    assert memory.unit == memory.baseline_unit == "MiB"
    assert memory.ratio is not None
    assert memory.ratio > 0
    assert (tmp_path / result.plots[0]).stat().st_size > 1000

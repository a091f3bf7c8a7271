"""``hybridio bench server`` in its seconds-long mode: every part runs, rows carry their units."""

from __future__ import annotations

import re
import shutil
import threading
from pathlib import Path

import psutil
import pytest

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


def test_without_wrk_the_scenario_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="apt-get install wrk"):
        run(BenchContext(out=tmp_path, tiny=True))


def test_server_scenario_tiny(tmp_path: Path) -> None:
    result = run(BenchContext(out=tmp_path, tiny=True))
    rows = {row.name: row for row in result.rows}
    idle = rows["idle: /io p99"]
    assert idle.value > 0
    assert idle.unit == "ms"
    process = rows["/cpu process: /io p99"]
    assert process.baseline_value == idle.value
    assert process.verdict == "inconclusive"  # one repeat decides nothing
    assert "too few repeats" in process.reason
    ok = rows["hybridio at 16 connections: ok req/s"]
    assert ok.baseline == "plain+pool at 16 connections: ok req/s"
    assert re.search(r"x 503/s; CPU of one core: loop \d+%, workers \d+%, client", ok.note)
    assert "CPU of one core" in process.note  # where the work runs: the loop's share too
    assert rows["/cpu process: ok req/s"].value > 0
    assert rows["/cpu process: ok req/s"].baseline == "/cpu inline: ok req/s"
    assert rows["/cpu inline: ok req/s"].baseline is None
    # Whether 4x the measured capacity gets refusals in a one-second tiny run depends on the
    # machine (on a busy one the capacity, and so the rate, is low): the share is always said.
    refused = rows["overload: refused"]
    assert refused.unit == "%"
    assert 0 <= refused.value <= 100
    memory = rows["overload: server + workers RSS after"]
    assert memory.unit == memory.baseline_unit == "MiB"
    assert memory.ratio is not None
    assert memory.ratio > 0
    assert (tmp_path / result.plots[0]).stat().st_size > 1000

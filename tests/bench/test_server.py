"""``hybridio bench server`` in its seconds-long mode: every part runs, rows carry their units."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest

from hybridio.bench._harness import free_port, running
from hybridio.bench._model import BenchContext
from hybridio.bench._server import WRK_SUMMARY, _cpu, parse_wrk, run

WRK = """\
Running 2s test @ http://127.0.0.1:8000/cpu?ms=20
  1 threads and 4 connections
  200 requests in 2.00s, 30.00KB read
  Non-2xx or 3xx responses: 50
Requests/sec:    100.00
{"us": 2000000, "requests": 200, "non2xx": 50, "p50_us": 1200, "p99_us": 15500}
"""


def test_wrk_summary_is_read_in_milliseconds_and_rates() -> None:
    assert parse_wrk(WRK) == {"seconds": 2.0, "ok": 75.0, "503": 25.0, "p50": 1.2, "p99": 15.5}
    nothing = parse_wrk('{"us": 1000000, "requests": 0, "non2xx": 0, "p50_us": 0, "p99_us": 0}')
    assert math.isnan(nothing["p50"])  # wrk says 0 when nothing was answered
    assert nothing["ok"] == nothing["503"] == 0


def test_wrk_prints_its_summary_through_the_script(tmp_path: Path) -> None:
    """Against a server answering 404 to everything: all refused, counted as non-2xx."""
    port = free_port()
    serve = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    with running(serve, listen=port, cwd=tmp_path, stdout=subprocess.DEVNULL):
        wrk = ["wrk", "-t1", "-c1", "-d1s", "-s", WRK_SUMMARY, f"http://127.0.0.1:{port}/nope"]
        got = parse_wrk(subprocess.run(wrk, capture_output=True, text=True, check=True).stdout)
    assert 0.9 < got["seconds"] < 5
    assert got["ok"] == 0
    assert got["503"] > 0
    assert 0 < got["p50"] <= got["p99"]


def test_cpu_is_split_between_the_loop_and_the_rest() -> None:
    burn = threading.Thread(target=sum, args=(range(3_000_000),))  # CPU off the main thread
    burn.start()
    burn.join()
    loop, rest = _cpu("plain+pool", psutil.Process())
    assert loop > 0
    assert rest > 0  # the thread's time stays with the process after it ended
    # The multi-process server's processes all run a loop: nothing is "the rest".
    assert _cpu("multi-process", psutil.Process())[1] == 0.0


def test_without_wrk_the_scenario_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="apt-get install wrk"):
        run(BenchContext(out=tmp_path, tiny=True))


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_server_scenario_tiny(tmp_path: Path) -> None:
    """Every server and every endpoint, one short repeat each."""
    result = run(BenchContext(out=tmp_path, tiny=True))
    rows = {row.name: row for row in result.rows}
    process = rows["/cpu process: /io p99"]
    assert process.baseline == "idle: /io p99"  # a baseline only: no row of its own
    assert "idle: /io p99" not in rows
    assert process.baseline_value is not None
    assert process.baseline_value > 0
    assert process.unit == "ms"
    assert process.verdict == "inconclusive"  # one repeat decides nothing
    assert "too few repeats" in process.reason
    ok = rows["hybridio at 16 connections: ok req/s"]
    assert ok.baseline == "plain+pool at 16 connections: ok req/s"
    assert re.search(r"x 503/s; CPU of one core: loop \d+%, workers \d+%, client", ok.note)
    assert "CPU of one core" in process.note  # where the work runs: the loop's share too
    assert rows["/cpu process: ok req/s"].value > 0
    assert rows["/cpu process: ok req/s"].baseline == "/cpu inline: ok req/s"
    assert rows["/cpu inline: ok req/s"].baseline is None
    assert rows["/hash thread: ok req/s"].baseline == "/hash inline: ok req/s"
    # The multi-process server's numbers are in its two rows against hybridio only.
    multi = rows["multi-process at 16 connections: /io p99 vs hybridio"]
    assert multi.baseline == "hybridio at 16 connections: /io p99"
    assert "CPU of one core: loop" in multi.note
    assert rows["hybridio at 4 connections: ok req/s vs multi-process"].ratio is not None
    assert "multi-process at 4 connections: ok req/s" not in rows
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

"""The runnable examples run, and print what their docs say they print.

The docs quote examples as fragments (``<!-- fragment-of: examples/NAME.py -->``, checked by
tests/test_docs.py), so every example must run here.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_python(*args: str, cwd: Path | None = None) -> str:
    """Run ``python *args``, check that it exits 0, return its stdout."""
    result = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=55,  # under the 60 s per-test limit
        check=False,
        cwd=cwd,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_every_example_is_run() -> None:
    # This module runs the examples of the core, the server kit and the crawler; examples that
    # come with their own tests (tests/web, tests/crawl, ...) must at least be named there.
    tests = [path.read_text() for path in Path(__file__).parent.rglob("test_*.py")]
    for example in EXAMPLES.rglob("*.py"):
        if not example.name.startswith("_"):
            assert any(example.name in text for text in tests), f"no test runs {example}"


@pytest.mark.parametrize("backend", ["asyncio", "uvloop", "trio"])
def test_tour_prints_its_table(backend: str) -> None:
    stdout = run_python(str(EXAMPLES / "tour.py"), "--quick", "--backend", backend)
    lines = stdout.splitlines()
    assert lines[0].split() == ["work", "where", "wall", "speedup", "worst", "tick", "delay"]
    rows = lines[1:7]
    assert len(rows) == 6
    for where in ("inline (loop)", "thread", "process"):
        assert sum(where in row for row in rows) == 2
    assert all(row.rstrip().endswith("ms") for row in rows)


def test_python_dash_m_hybridio_can_run_process_work(tmp_path: Path) -> None:
    # Workers must not re-run hybridio/__main__.py (its imports only work inside the package).
    code = (
        "import anyio, hybridio, os\n"
        "async def main():\n"
        "    print(await hybridio.run_cpu(os.getpid) != os.getpid())\n"
        "anyio.run(main)\n"
    )
    module = tmp_path / "dashm_probe.py"
    module.write_text(code)
    assert run_python("-m", "dashm_probe", cwd=tmp_path).strip() == "True"
    assert run_python("-m", "hybridio", "--version").startswith("hybridio, version")


@pytest.mark.parametrize("backend", ["asyncio", "uvloop", "trio"])
def test_find_blocking_names_both_culprits(backend: str) -> None:
    stdout = run_python(str(EXAMPLES / "find_blocking.py"), backend)
    before, _, after = stdout.partition("After moving the blocking calls off the loop")
    # Each block lasts long enough for the watchdog to sample it on a busy machine (a 300 ms
    # sleep; JSON work of about 0.2 s of CPU, which a busy machine stretches, never shrinks).
    assert (
        "in " + str(EXAMPLES / "find_blocking.py:25 fetch_exchange_rates_synchronously") in before
    )
    assert "in " + str(EXAMPLES / "find_blocking.py:33 render_invoice") in before
    assert "Loop health over" in after
    # Neither culprit is left on the loop. A busy machine may still starve the loop for a moment:
    # such a block is a stall, which names no culprit (its stack may show the offloading call).
    assert "find_blocking.py:25" not in after
    assert "find_blocking.py:33" not in after


def test_crawler_crawls_with_its_own_extraction(tmp_path: Path) -> None:
    stdout = run_python(str(EXAMPLES / "crawler.py"), "8", cwd=tmp_path)
    first = json.loads(stdout.splitlines()[0])
    assert first["headings"]
    assert "records computed in pids" in stdout
    assert not list(tmp_path.iterdir())  # it writes to a temporary directory only


def test_hybrid_server_serves_cpu_work_and_stops_on_sigterm() -> None:
    with subprocess.Popen(
        [sys.executable, str(EXAMPLES / "hybrid_server.py"), "--port", "0", "--workers", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as server:
        try:
            assert server.stdout is not None
            announced = server.stdout.readline()  # printed once it listens
            match = re.search(r"http://127\.0\.0\.1:\d+", announced)
            assert match, announced
            url = f"{match.group(0)}/cpu?ms=5&mode=process"
            with urllib.request.urlopen(url, timeout=30) as response:
                assert response.status == 200
                assert "result" in json.loads(response.read())
            server.send_signal(signal.SIGTERM)
            assert server.wait(timeout=30) == 0
        finally:
            if server.poll() is None:
                server.kill()


def test_interpreters_runs_or_says_what_it_needs() -> None:
    stdout = run_python(str(EXAMPLES / "interpreters.py"))
    if sys.version_info >= (3, 13):
        assert "the default runtime agrees: True" in stdout
        assert "words: [4, 2, 3]" in stdout
    else:
        assert "needs Python 3.13+" in stdout


def test_cluster_runs_on_a_local_cluster_without_a_scheduler_address() -> None:
    pytest.importorskip("distributed", reason="examples/cluster.py needs hybridio[cluster]")
    stdout = run_python(str(EXAMPLES / "cluster.py"))
    assert re.search(r"500 words in 100 pages, parsed on tcp://127\.0\.0\.1:\d+", stdout)

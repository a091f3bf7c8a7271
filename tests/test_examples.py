"""The runnable examples run, and print what their docs say they print."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize("backend", ["asyncio", "uvloop", "trio"])
def test_tour_prints_its_table(backend: str) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "tour.py"), "--quick", "--backend", backend],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
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
    result = subprocess.run(
        [sys.executable, "-m", "dashm_probe"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"
    version = subprocess.run(
        [sys.executable, "-m", "hybridio", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert version.stdout.startswith("hybridio, version")


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_find_blocking_names_both_culprits(backend: str) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "find_blocking.py"), backend],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    before, _, after = result.stdout.partition("After moving the blocking calls off the loop")
    assert "find_blocking.py:25 fetch_exchange_rates_synchronously" in before
    assert "render_invoice" in before
    assert "blocks: 0," in after

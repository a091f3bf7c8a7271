"""hybridio.pytest_plugin: a test whose loop code blocks fails naming the line; others pass.

Each case runs pytest in a child process on a small test project (anyio's plugin runs its async
tests on asyncio, asyncio+uvloop and trio). The blocking test burns a known amount of the loop
thread's CPU time, so a busy machine cannot turn it into a stall; the clean tests only await,
and offload a blocking call, so a busy machine can only make them late (a stall), never fail.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

CONFTEST = textwrap.dedent(
    """
    import pytest

    @pytest.fixture(
        params=[
            pytest.param(("asyncio", {}), id="asyncio"),
            pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
            pytest.param(("trio", {}), id="trio"),
        ]
    )
    def anyio_backend(request):
        return request.param
    """
)

TESTS = textwrap.dedent(
    """
    import time

    import anyio
    import pytest

    pytestmark = pytest.mark.anyio


    def parse_the_world() -> None:
        end = time.thread_time() + 0.25  # CPU time of the loop thread: a busy machine can't shrink it
        while time.thread_time() < end:
            pass


    async def test_blocking() -> None:
        await anyio.sleep(0.01)
        parse_the_world()
        await anyio.sleep(0.01)


    async def test_clean() -> None:
        for _ in range(20):
            await anyio.sleep(0.005)
        await anyio.to_thread.run_sync(time.sleep, 0.3)  # blocking, but off the loop


    @pytest.mark.hybridio_no_blocking
    async def test_marked_blocking() -> None:
        parse_the_world()
        await anyio.sleep(0.01)


    @pytest.mark.hybridio_no_blocking(enabled=False)
    async def test_exempt_blocking() -> None:
        parse_the_world()
        await anyio.sleep(0.01)


    @pytest.mark.hybridio_no_blocking(threshold=30.0)
    async def test_under_its_own_threshold() -> None:
        parse_the_world()
        await anyio.sleep(0.01)


    def test_sync_tests_are_left_alone() -> None:
        time.sleep(0.2)
    """
)

BACKENDS = ("asyncio", "uvloop", "trio")


def _pytest(tmp_path: Path, *args: str) -> tuple[dict[str, str], str]:
    """Run pytest on the small project; return each test's outcome by node id, and the output."""
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_loop.py").write_text(TESTS)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", "-q", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=50,  # under the 60 s per-test limit
        check=False,
    )
    output = result.stdout + result.stderr
    outcomes = {
        node: outcome
        for outcome, node in re.findall(r"^(PASSED|FAILED|ERROR) (\S+)", output, re.MULTILINE)
    }
    return outcomes, output


def _line(name: str) -> int:
    return next(i for i, line in enumerate(TESTS.splitlines(), 1) if name in line)


def test_with_the_flag_a_blocking_test_fails_naming_its_line(tmp_path: Path) -> None:
    outcomes, output = _pytest(
        tmp_path,
        "-p",
        "hybridio.pytest_plugin",
        "--hybridio-no-blocking",
        "--hybridio-block-threshold",
        "0.05",
        "-k",
        "test_blocking or test_clean or test_sync",
    )
    where = f"test_loop.py:{_line('while time.thread_time() < end')} parse_the_world"
    for backend in BACKENDS:
        assert outcomes[f"test_loop.py::test_blocking[{backend}]"] == "FAILED", output
        assert outcomes[f"test_loop.py::test_clean[{backend}]"] == "PASSED", output
    assert outcomes["test_loop.py::test_sync_tests_are_left_alone"] == "PASSED", output
    assert len(outcomes) == 7, output
    assert "the event loop was blocked past 50 ms by code, once (hybridio_no_blocking)" in output
    # Once per failing test (the short summary may repeat it, depending on the terminal width).
    assert output.count(f"in {where}  (while time.thread_time() < end:)") >= 3, output
    # The stack leads from the test to the culprit.
    assert f"line {_line('    parse_the_world()')}, in test_blocking" in output


def test_without_the_flag_only_marked_tests_are_checked(tmp_path: Path) -> None:
    # One backend is enough here: the flag's test above runs all three.
    outcomes, output = _pytest(tmp_path, "-p", "hybridio.pytest_plugin", "-k", "asyncio")
    assert outcomes == {
        "test_loop.py::test_blocking[asyncio]": "PASSED",
        "test_loop.py::test_clean[asyncio]": "PASSED",
        "test_loop.py::test_marked_blocking[asyncio]": "FAILED",
        "test_loop.py::test_exempt_blocking[asyncio]": "PASSED",
        "test_loop.py::test_under_its_own_threshold[asyncio]": "PASSED",
    }, output
    assert "blocked past 100 ms by code" in output  # the default threshold


def test_the_ini_options_turn_it_on(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\naddopts = -p hybridio.pytest_plugin\nhybridio_no_blocking = true\n"
        "hybridio_block_threshold = 0.05\n"
    )
    outcomes, output = _pytest(tmp_path, "-k", "trio and (test_blocking or test_clean)")
    assert outcomes == {
        "test_loop.py::test_blocking[trio]": "FAILED",
        "test_loop.py::test_clean[trio]": "PASSED",
    }, output
    assert "blocked past 50 ms by code" in output


def test_not_loaded_it_does_nothing(tmp_path: Path) -> None:
    outcomes, output = _pytest(tmp_path, "-p", "no:warnings", "-k", "uvloop and test_blocking")
    assert outcomes == {"test_loop.py::test_blocking[uvloop]": "PASSED"}, output
    assert "hybridio" not in output


def test_a_bad_threshold_is_a_usage_error(tmp_path: Path) -> None:
    _, output = _pytest(
        tmp_path, "-p", "hybridio.pytest_plugin", "--hybridio-block-threshold", "-1"
    )
    assert "--hybridio-block-threshold must be a positive number of seconds, got -1.0" in output

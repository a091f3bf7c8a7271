"""A pytest plugin that fails an async test whose event loop was blocked, naming the line.

Load it explicitly (it is not auto-loaded, so it costs nothing where it is not wanted)::

    pytest -p hybridio.pytest_plugin --hybridio-no-blocking

or in ``pyproject.toml``::

    [tool.pytest.ini_options]
    addopts = "-p hybridio.pytest_plugin"
    hybridio_no_blocking = true        # check every async test (or use the marker)
    hybridio_block_threshold = 0.1     # seconds (the default)

and per test::

    @pytest.mark.hybridio_no_blocking(threshold=0.05)
    async def test_handler() -> None: ...

    @pytest.mark.hybridio_no_blocking(enabled=False)   # exempt one test
    async def test_legacy() -> None: ...

It wraps the async test function in a ``LoopMonitor`` running on the test's own event loop, so it
works with whatever runs coroutine tests there: anyio's plugin on asyncio, asyncio+uvloop and
trio (tested), and others that call the test function inside their loop. The test fails when
the loop was blocked past the threshold by *code* (``BlockEvent.cause == "code"``); a loop that
was late only because the machine was busy (``stall``) never fails a test. Async fixtures are
not watched, only the test function.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Coroutine, Generator
from pathlib import Path
from typing import Any

import pytest

from ._monitor._loop_monitor import LoopMonitor
from ._monitor._report import BlockEvent

__all__ = ["BLOCK_THRESHOLD"]

#: The default threshold, in seconds: a test whose loop was held longer by code fails.
BLOCK_THRESHOLD = 0.1

_MARKER = "hybridio_no_blocking"


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--hybridio-no-blocking`` and ``--hybridio-block-threshold`` (and their ini keys)."""
    group = parser.getgroup("hybridio", "hybridio: fail tests that block the event loop")
    group.addoption(
        "--hybridio-no-blocking",
        action="store_true",
        default=None,
        help="fail every async test whose event loop code blocks past the threshold",
    )
    group.addoption(
        "--hybridio-block-threshold",
        type=float,
        default=None,
        metavar="SECONDS",
        help=f"block threshold in seconds (default {BLOCK_THRESHOLD})",
    )
    parser.addini(
        "hybridio_no_blocking",
        type="bool",
        default=False,
        help="check every async test for event-loop blocks (as --hybridio-no-blocking)",
    )
    parser.addini(
        "hybridio_block_threshold",
        type="string",
        default=str(BLOCK_THRESHOLD),
        help="block threshold in seconds for the hybridio_no_blocking check",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker, and check the threshold once."""
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(threshold=None, *, enabled=True): fail this async test if code blocks its "
        "event loop longer than threshold seconds (hybridio.pytest_plugin)",
    )
    _threshold(config.getoption("--hybridio-block-threshold"), "--hybridio-block-threshold")
    _threshold(config.getini("hybridio_block_threshold"), "hybridio_block_threshold")


def _threshold(value: object, where: str) -> float | None:
    if value is None:
        return None
    try:
        threshold = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        threshold = float("nan")
    if isinstance(value, bool) or not threshold > 0:
        raise pytest.UsageError(f"{where} must be a positive number of seconds, got {value!r}")
    return threshold


def _settings(item: pytest.Function) -> float | None:
    """The threshold that applies to this test, or None when it is not checked."""
    config = item.config
    marker = item.get_closest_marker(_MARKER)
    enabled = bool(config.getoption("--hybridio-no-blocking") or config.getini(_MARKER))
    threshold = _threshold(config.getoption("--hybridio-block-threshold"), "threshold")
    if threshold is None:
        threshold = _threshold(config.getini("hybridio_block_threshold"), "threshold")
    if marker is not None:
        unknown = set(marker.kwargs) - {"threshold", "enabled"}
        if unknown or len(marker.args) > 1:
            raise pytest.UsageError(
                f"{item.nodeid}: @pytest.mark.{_MARKER} takes threshold= and enabled= only"
            )
        enabled = bool(marker.kwargs.get("enabled", True))
        given = marker.args[0] if marker.args else marker.kwargs.get("threshold")
        if given is not None:
            threshold = _threshold(given, f"{item.nodeid}: threshold")
    return threshold if enabled else None


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, object, object]:
    """Run a checked async test inside a LoopMonitor; fail it when code blocked its loop."""
    test = pyfuncitem.obj
    threshold = _settings(pyfuncitem) if inspect.iscoroutinefunction(test) else None
    if threshold is None:
        return (yield)
    blocks: list[BlockEvent] = []
    pyfuncitem.obj = _monitored(test, threshold, blocks)
    try:
        result = yield
    finally:
        pyfuncitem.obj = test
    if blocks:
        pytest.fail(_message(blocks, threshold, pyfuncitem.config.rootpath), pytrace=False)
    return result


def _monitored(
    test: Callable[..., Coroutine[Any, Any, object]], threshold: float, blocks: list[BlockEvent]
) -> Callable[..., Coroutine[Any, Any, object]]:
    def keep(event: BlockEvent) -> None:
        if event.cause == "code":
            blocks.append(event)

    @functools.wraps(test)
    async def monitored(*args: object, **kwargs: object) -> object:
        async with LoopMonitor(threshold=threshold, on_block=keep):
            return await test(*args, **kwargs)

    return monitored


def _message(blocks: list[BlockEvent], threshold: float, root: Path) -> str:
    times = "once" if len(blocks) == 1 else f"{len(blocks)} times"
    lines = [
        (
            f"the event loop was blocked past {threshold * 1000:g} ms by code, {times} "
            "(hybridio_no_blocking):"
        )
    ]
    for block in blocks:
        culprit = block.culprit
        assert culprit is not None  # a "code" block names its culprit
        where = f"{_relative(culprit.filename, root)}:{culprit.lineno} {culprit.function}"
        source = f"  ({culprit.line})" if culprit.line else ""
        lines.append(f"  blocked {block.duration * 1000:.1f} ms in {where}{source}")
        lines.extend(f"      {line}" for line in block.stack.rstrip().splitlines())
    return "\n".join(lines)


def _relative(filename: str, root: Path) -> str:
    try:
        return os.path.relpath(filename, root) if Path(filename).is_relative_to(root) else filename
    except ValueError:  # another drive (Windows)
        return filename

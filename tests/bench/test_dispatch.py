"""The dispatch scenario runs in tiny mode and produces well-formed rows with verdicts; its
batching sketch fails rather than hangs; the scenarios of this family use only public APIs."""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from hybridio.bench import _auto, _cluster, _dispatch, _interpreters
from hybridio.bench._dispatch import batching_sketch, run
from hybridio.bench._model import BenchContext


def test_dispatch_rows_and_plot(tmp_path: Path) -> None:
    result = run(BenchContext(out=tmp_path, tiny=True))
    names = {row.name for row in result.rows}
    for expected in (
        "hybridio.run_cpu x1 vs anyio.to_process x1",
        "hybridio.run_cpu x32 vs batching sketch x32",
        "hybridio.run_blocking x32 vs ThreadPoolExecutor x32",
        "cpu hybridio.run_cpu vs cpu inline",
        "map_cpu vs anyio.to_process x32",
    ):
        assert expected in names
    for row in result.rows:
        assert row.value > 0
        assert math.isfinite(row.value)
        # Every row is paired: each baseline's rate is shown as the baseline value of its rows.
        assert row.baseline == row.name.split(" vs ")[1]
        assert row.ratio == row.value / row.baseline_value  # type: ignore[operator]
        if row.target is not None:
            assert row.verdict == "inconclusive"  # one repeat decides nothing
            assert "too few repeats" in row.reason
    assert (tmp_path / result.plots[0]).stat().st_size > 0
    assert result.extra["batches"] > 0


class _FailsInTheWorker:
    """Pickles fine here; unpickling it in a worker raises ZeroDivisionError."""

    def __reduce__(self) -> tuple[Callable[[int, int], float], tuple[int, int]]:
        return (operator.truediv, (1, 0))


def test_the_batching_sketch_fails_instead_of_hanging() -> None:
    async def main() -> None:
        async with batching_sketch(1) as call:
            assert await call(41) == 41
            await call(_FailsInTheWorker())

    with pytest.raises(BaseExceptionGroup) as caught:
        anyio.run(main, backend="asyncio")
    assert caught.group_contains(RuntimeError, match="batching sketch", depth=None)


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            names.add(node.module or "")
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_these_scenarios_use_no_private_backend() -> None:
    """Upper layers do not reach into ``hybridio._backends`` (issue 18)."""
    for module in (_auto, _cluster, _dispatch, _interpreters):
        assert module.__file__ is not None
        assert not {name for name in _imports(Path(module.__file__)) if "_backends" in name}

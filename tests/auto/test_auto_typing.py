"""``@hybridio.offload`` keeps the function's types: mypy checks a snippet that uses it."""

from __future__ import annotations

from pathlib import Path

import pytest

SNIPPET = """
from typing import assert_type

import hybridio


@hybridio.offload
def add(a: int, b: int) -> int:
    return a + b


async def main() -> None:
    same: hybridio.OffloadedFunction[[int, int], int] = add
    assert_type(await add(1, 2), int)
    assert_type(await hybridio.run(add, 1, 2), int)
    assert_type(await hybridio.run(len, "abc", kind="auto"), int)
    rt = hybridio.Runtime(default_kind="auto")
    assert_type(await rt.run(add, 1, 2, kind="auto"), int)
    decision: hybridio.AutoDecision = rt.stats().auto["x"]
    assert_type(decision.gil_ratio, float)
    assert_type(same, hybridio.OffloadedFunction[[int, int], int])
    await add("one", 2)  # the only error: a str where an int goes
"""


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_offload_is_typed(tmp_path: Path) -> None:
    api = pytest.importorskip("mypy.api")  # a dev dependency: installed by `make install`
    module = tmp_path / "uses_offload.py"
    module.write_text(SNIPPET)
    out, err, status = api.run(["--strict", "--no-error-summary", str(module)])
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert len(errors) == 1, out + err
    assert (
        'Argument 1 to "__call__" of "OffloadedFunction" has incompatible type "str"' in (errors[0])
    ), errors
    assert status == 1

"""What the claims sub-scenarios share: the claims (from ``claims_notes.md``) and row helpers."""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any

import anyio

import hybridio

from ._model import BenchContext, Row, Rule, ScenarioResult, Series, Verdict, gather

# gather: for this branch's _dispatch (bench-b's imports it from _model; drop it at the merge).
__all__ = ["CLAIMS", "NOTES", "SCENARIO", "Part", "claim_rows", "gather", "one_shot", "rates"]

SCENARIO = "claims"
#: What one measurement of the claims adds to the scenario's result (rows and plots).
Part = Callable[[BenchContext, ScenarioResult], None]

#: id -> the seed notes' claim, quoted in its rows; quote -> what its measurement means. Each
#: "## id: quote" section of claims_notes.md gives both (the docs page shows the explanation).
CLAIMS: dict[str, str] = {}
NOTES: dict[str, str] = {}
_TEXT = resources.files(__package__).joinpath("claims_notes.md").read_text()
for _id, _quote, _body in re.findall(
    r"^## (\w+): ([^\n]+)\n(.*?)(?=^## |\Z)", _TEXT, re.MULTILINE | re.DOTALL
):
    CLAIMS[_id], NOTES[_quote] = _quote, " ".join(_body.split())


def claim_rows(series: Series, claims: str, rule: Rule | None = None, **more: Any) -> list[Row]:
    """The row of ``series`` for each claim id in ``claims`` (one measurement, several claims)."""
    return [series.row(SCENARIO, rule=rule, claim=CLAIMS[c], **more) for c in claims.split()]


def one_shot(holds: bool, fails: bool) -> Verdict:
    """A claim checked once: "refuted" when it clearly fails, "confirmed" when it holds, else
    "qualified" (it holds under a condition, which the row's note names)."""
    return "refuted" if fails else "confirmed" if holds else "qualified"


async def rates(
    rt: hybridio.Runtime, count: int, kinds: Sequence[hybridio.Kind], fn: Any, *args: Any
) -> list[float]:
    """Calls per second of ``count`` calls of ``fn(*args)`` for each kind in turn: "inline" one
    after the other, the others all at once (a round of kinds in turn: the load changes of a
    shared machine hit all of them alike)."""
    result = []
    for kind in kinds:
        start = time.perf_counter()
        if kind == "inline" or count == 1:
            for _ in range(count):
                await rt.run(fn, *args, kind=kind)
        else:
            async with anyio.create_task_group() as tg:
                for _ in range(count):
                    tg.start_soon(functools.partial(rt.run, fn, *args, kind=kind))
        result.append(count / (time.perf_counter() - start))
    return result

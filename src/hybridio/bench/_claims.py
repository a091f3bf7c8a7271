"""The ``claims`` scenario: every claim of the seed notes about processes, threads and the GIL,
measured on this machine and given a verdict by the rules of ``_claims_common``.

Sub-scenarios run one after the other; one that fails becomes an "n/a" row naming the error and
the others still run.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable
from dataclasses import replace

from . import _claims_alt, _claims_cost, _claims_cpu, _claims_safety
from ._claims_common import CLAIMS, SCENARIO, Part
from ._model import BenchContext, Row, ScenarioResult
from ._runner import prefixed

__all__ = ["SUB_SCENARIOS", "run"]

#: Name -> measurement, in the order they run (cheap and robust first).
SUB_SCENARIOS: dict[str, Callable[[BenchContext], Part]] = {
    "parallel": _claims_cpu.parallel,
    "gil-release": _claims_cpu.gil_release,
    "io-threads": _claims_cpu.io_threads,
    "startup": _claims_cost.startup,
    "memory": _claims_cost.memory,
    "ipc": _claims_cost.ipc,
    "crossover": _claims_cpu.crossover,
    "killability": _claims_safety.killability,
    "races": _claims_safety.races,
    "isolation": _claims_safety.isolation,
    "faster-access": _claims_safety.faster_access,
    "alternatives": _claims_alt.alternatives,
}

DESCRIPTION = (
    "Each claim of the seed notes on processes vs threads, measured here against a baseline "
    "measured in the same run, repeat by repeat. A verdict needs 6 repeats and a 95% interval "
    "of the median ratio clear of its threshold; 'qualified' holds only under a condition "
    "(docs/claims.md), 'n/a' rows give context."
)


def run(ctx: BenchContext) -> ScenarioResult:
    """Measure every claim; return one result with all rows and plots."""
    result = ScenarioResult(SCENARIO, "The seed notes' claims", DESCRIPTION)
    for name, measure in SUB_SCENARIOS.items():
        ctx.progress(f"{name}...")
        start = time.perf_counter()
        sub = replace(ctx, progress=prefixed(ctx.progress, name))
        try:
            part = measure(sub)
        except Exception as exc:  # noqa: BLE001 - one broken measurement must not hide the rest
            result.extra.setdefault("errors", {})[name] = traceback.format_exc()
            failed = Row(SCENARIO, f"{name}: measurement failed", math.nan, "", verdict="n/a")
            failed.note = f"{type(exc).__name__}: {exc}"
            part = Part(rows=[failed])
        result.extra.setdefault("sub_scenario_seconds", {})[name] = time.perf_counter() - start
        for row in part.rows:  # the sub-scenarios name claims by id; the report quotes them
            row.claim = CLAIMS.get(row.claim or "", row.claim)
        result.rows += part.rows
        result.plots += part.plots
    return result

"""The ``claims`` scenario: every claim of the seed notes about processes, threads and the GIL,
measured on this machine and given a verdict by an explicit threshold (see ``_claims_verdicts``).

Sub-scenarios run one after the other; one that fails becomes an "n/a" row naming the error and
the others still run.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable

from . import _claims_alt, _claims_cost, _claims_cpu, _claims_safety
from ._claims_common import Part, row
from ._model import BenchContext, ScenarioResult

__all__ = ["SUB_SCENARIOS", "run"]

#: Name -> measurement, in the order they run (cheap and robust first).
SUB_SCENARIOS: dict[str, Callable[[BenchContext], Part]] = {
    "parallel": _claims_cpu.parallel,
    "gil-release": _claims_cpu.gil_release,
    "io-threads": _claims_cpu.io_threads,
    "startup": _claims_cost.startup,
    "memory": _claims_cost.memory,
    "ipc": _claims_cost.ipc,
    "crossover": _claims_cost.crossover,
    "killability": _claims_safety.killability,
    "races": _claims_safety.races,
    "isolation": _claims_safety.isolation,
    "faster-access": _claims_safety.faster_access,
    "alternatives": _claims_alt.alternatives,
}

DESCRIPTION = (
    "Each claim of the seed notes on processes vs threads, measured here. Timings are medians "
    "of the repeats with their spread, each against a baseline measured in the same run "
    "(inline, a thread, or the parent process). Verdicts come from fixed thresholds: a parallel "
    "speedup counts from 1 + 0.6 x (CPUs - 1), 'no benefit' is below 1.15x, 'way slower' or "
    "'more memory' from 10x (refuted under 2x); 'qualified' means it holds only under the "
    "condition in the note. Rows marked n/a with the verdict elsewhere give context."
)


def run(ctx: BenchContext) -> ScenarioResult:
    """Measure every claim; return one result with all rows and plots."""
    result = ScenarioResult(
        name="claims",
        title="the seed notes' claims about processes, threads and the GIL",
        description=DESCRIPTION,
    )
    timings: dict[str, float] = {}
    for name, measure in SUB_SCENARIOS.items():
        ctx.progress(f"{name}...")
        start = time.perf_counter()
        try:
            part = measure(ctx)
        except Exception as exc:  # noqa: BLE001 - one broken measurement must not hide the rest
            result.extra.setdefault("errors", {})[name] = traceback.format_exc()
            part = Part(
                rows=[
                    row(
                        f"{name}: measurement failed",
                        math.nan,
                        "",
                        claim=None,
                        verdict="n/a",
                        note=f"{type(exc).__name__}: {exc}",
                    )
                ]
            )
        timings[name] = time.perf_counter() - start
        result.rows += part.rows
        result.plots += part.plots
        if part.data:
            result.extra[name] = part.data
    result.extra["sub_scenario_seconds"] = timings
    return result

"""Run scenarios one after the other, timing each, so one failure never loses the others."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import replace

from ._model import BenchContext, ScenarioResult
from ._registry import SCENARIOS, ScenarioUnavailable, load_scenario

__all__ = ["expand_names", "run_scenarios"]


def expand_names(names: Iterable[str], registry: dict[str, str] | None = None) -> list[str]:
    """Resolve ``all`` to every registered scenario, drop duplicates, keep the order given.

    Raises:
        ValueError: a name is neither ``all`` nor registered.
    """
    registry = SCENARIOS if registry is None else registry
    chosen: list[str] = []
    for name in names:
        for item in registry if name == "all" else [name]:
            if item not in registry:
                raise ValueError(
                    f"unknown scenario {item!r}; choose from: all, {', '.join(registry)}"
                )
            if item not in chosen:
                chosen.append(item)
    return chosen


def _prefixed(progress: Callable[[str], None], name: str) -> Callable[[str], None]:
    return lambda message: progress(f"{name}: {message}")


def run_scenarios(
    names: Iterable[str],
    ctx: BenchContext,
    *,
    registry: dict[str, str] | None = None,
    announce: Callable[[str], None] = lambda message: None,
    on_done: Callable[[ScenarioResult], None] = lambda result: None,
) -> list[ScenarioResult]:
    """Run each named scenario with ``ctx`` and return their results in order.

    ``announce`` hears when each scenario starts and ends; the scenario's own progress goes to
    ``ctx.progress`` prefixed with its name. A scenario that cannot be loaded comes back with ``status="skipped"``, one that raises with
    ``status="error"`` and the traceback in ``extra["traceback"]``; the rest still run.
    """
    ctx.out.mkdir(parents=True, exist_ok=True)
    results = []
    for name in expand_names(names, registry):
        announce(f"{name}: starting")
        start = time.perf_counter()
        try:
            scenario = load_scenario(name, registry)
        except ScenarioUnavailable as exc:
            result = ScenarioResult(name, name, "", status="skipped", reason=str(exc))
        else:
            try:
                result = scenario(replace(ctx, progress=_prefixed(ctx.progress, name)))
            # Any failure of one scenario becomes its error section; the others still run.
            except Exception as exc:  # noqa: BLE001
                result = ScenarioResult(
                    name,
                    name,
                    "",
                    status="error",
                    reason=f"{type(exc).__name__}: {exc}",
                    extra={"traceback": traceback.format_exc()},
                )
        result.seconds = time.perf_counter() - start
        announce(f"{name}: {result.status} in {result.seconds:.1f} s")
        results.append(result)
        on_done(result)
    return results

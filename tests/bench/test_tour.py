"""examples/tour.py concludes from its own numbers, not from what it expects."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

TOUR = Path(__file__).resolve().parents[2] / "examples" / "tour.py"


def _tour() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tour", TOUR)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["tour"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _results(tour: ModuleType, process: float) -> list[object]:
    results = []
    for work in ("cpu", "blocking"):
        for kind, speedup, tick in (
            ("inline", 1.0, 0.2),
            ("blocking", 1.0, 0.01),
            ("cpu", process, 0.002),
        ):
            results.append(tour.Result(work, kind, 1.0 / speedup, tick, speedup))
    return results


def test_tour_says_what_its_numbers_show() -> None:
    tour = _tour()
    fast = "\n".join(tour.conclusions(_results(tour, 1.9)))
    assert "processes ran it 1.90x faster than inline" in fast
    assert "The loop stalled up to 200 ms with the work inline, 2 ms with it in processes" in fast
    slow = "\n".join(tour.conclusions(_results(tour, 1.01)))
    assert "processes gained only 1.01x here" in slow
    assert "faster than inline" not in slow

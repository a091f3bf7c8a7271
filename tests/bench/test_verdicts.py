"""Verdicts come from the numbers: each flips exactly at its threshold."""

from __future__ import annotations

import math

import pytest

from hybridio.bench._claims_cost import crossover_point
from hybridio.bench._claims_verdicts import (
    parallel_target,
    verdict_at_least,
    verdict_at_most,
    verdict_crossover,
    verdict_independent,
    verdict_isolated,
    verdict_race,
)
from hybridio.bench._report import combine_verdicts


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1.6, "confirmed"), (1.5999, "qualified"), (1.15, "qualified"), (1.1499, "refuted")],
)
def test_at_least_flips_at_thresholds(value: float, expected: str) -> None:
    assert verdict_at_least(value, confirm=1.6, refute=1.15) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1.1499, "confirmed"), (1.15, "qualified"), (1.5999, "qualified"), (1.6, "refuted")],
)
def test_at_most_flips_at_thresholds(value: float, expected: str) -> None:
    assert verdict_at_most(value, confirm=1.15, refute=1.6) == expected


def test_unmeasured_is_not_applicable() -> None:
    assert verdict_at_least(math.nan, 2, 1) == "n/a"
    assert verdict_at_most(None, 2, 1) == "n/a"


def test_parallel_target_scales_with_cpus() -> None:
    assert parallel_target(1) == 1.0
    assert parallel_target(2) == pytest.approx(1.6)
    assert parallel_target(8) == pytest.approx(5.2)


def test_race_verdict() -> None:
    assert verdict_race(lost_unlocked=1, lost_locked=0) == "confirmed"
    assert verdict_race(lost_unlocked=0, lost_locked=0) == "qualified"
    assert verdict_race(lost_unlocked=5, lost_locked=1) == "refuted"


def test_isolation_verdict() -> None:
    assert verdict_isolated(process_sees_change=False, thread_sees_change=True) == "confirmed"
    assert verdict_isolated(process_sees_change=True, thread_sees_change=True) == "refuted"
    assert verdict_isolated(process_sees_change=False, thread_sees_change=False) == "qualified"


def test_independent_verdict() -> None:
    assert verdict_independent([False, False]) == "confirmed"
    assert verdict_independent([True, False]) == "qualified"
    assert verdict_independent([True, True]) == "refuted"
    assert verdict_independent([]) == "n/a"


def test_crossover_verdict_and_point() -> None:
    points = [(1e-4, 0.4), (1e-3, 0.9), (1e-2, 1.8)]
    assert verdict_crossover(points, confirm=1.15) == "qualified"
    assert verdict_crossover([(1e-4, 1.2), (1e-3, 1.9)], confirm=1.15) == "confirmed"
    assert verdict_crossover([(1e-4, 0.2), (1e-3, 1.1)], confirm=1.15) == "refuted"
    assert verdict_crossover([], confirm=1.15) == "n/a"
    point = crossover_point(points)
    assert point is not None
    assert 1e-3 < point < 1e-2
    assert crossover_point([(1e-4, 0.5)]) is None
    assert crossover_point([(1e-4, 1.5), (1e-3, 2.0)]) == 1e-4


def test_combined_verdict_of_a_claim() -> None:
    assert combine_verdicts(["confirmed", "confirmed", "n/a"]) == "confirmed"
    assert combine_verdicts(["confirmed", "refuted"]) == "qualified"
    assert combine_verdicts(["n/a", None]) == "n/a"


def test_paired_ratio_is_the_median_of_per_repeat_ratios() -> None:
    from hybridio.bench._model import paired_ratio

    # The third repeat ran in a slow spell that hit value and baseline alike: pairing cancels it,
    # where the ratio of the medians (20 / 10 = 2) does not.
    assert paired_ratio([30.0, 10.0, 20.0], [10.0, 10.0, 40.0]) == 1.0
    assert paired_ratio([4.0, 6.0], [2.0]) == 2.5  # unpaired: ratio of the medians
    assert paired_ratio([1.0], []) is None

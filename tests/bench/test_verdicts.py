"""Verdicts come from intervals: synthetic noisy runs, quiet and busy, with deterministic seeds."""

from __future__ import annotations

import math
import random

import pytest

from hybridio.bench import _load
from hybridio.bench._claims import crossover_point, one_shot
from hybridio.bench._load import Load
from hybridio.bench._model import INCONCLUSIVE, MIN_REPEATS, Rule, fact, judge, median_interval
from hybridio.bench._report import combine_verdicts
from hybridio.bench._targets import parallel_target

PARALLEL = Rule(1.6, 1.15, load_sensitive=True)
NO_GAIN = Rule(1.15, 1.6, higher=False, load_sensitive=True)
QUIET = Load(others=0.1, steal=0.0, load_average=0.3, cpus=2, samples=10)
BUSY = Load(others=1.6, steal=0.0, load_average=4.0, cpus=2, samples=10)


def test_median_interval_needs_six_values_and_widens_with_spread() -> None:
    assert median_interval([1.0] * (MIN_REPEATS - 1)) is None
    assert median_interval([3.0, 1.0, 2.0, 6.0, 5.0, 4.0]) == (1.0, 6.0)
    # 12 values: the 3rd smallest to the 3rd largest (sign test, 98% >= 95%).
    assert median_interval([float(i) for i in range(12)]) == (2.0, 9.0)


@pytest.mark.parametrize(
    ("interval", "expected"),
    [
        ((1.7, 1.9), "confirmed"),
        ((1.2, 1.5), "qualified"),
        ((0.9, 1.1), "refuted"),
        ((1.1, 1.9), INCONCLUSIVE),
        ((1.5, 1.7), INCONCLUSIVE),
    ],
)
def test_a_verdict_needs_the_whole_interval_past_a_threshold(
    interval: tuple[float, float], expected: str
) -> None:
    assert judge(PARALLEL, interval, MIN_REPEATS, QUIET)[0] == expected


def test_too_few_repeats_is_inconclusive_and_says_so() -> None:
    verdict, reason = judge(PARALLEL, (1.8, 1.9), MIN_REPEATS - 1)
    assert verdict == INCONCLUSIVE
    assert "too few repeats" in reason


def test_a_busy_machine_never_refutes_and_decides_no_speedup() -> None:
    verdict, reason = judge(PARALLEL, (0.9, 1.1), MIN_REPEATS, BUSY)
    assert verdict == INCONCLUSIVE
    assert "busy machine" in reason
    assert "1.6 of 2 CPUs" in reason
    # Other work distorts speedups both ways (a bigger share of the cores for more workers).
    assert judge(PARALLEL, (1.7, 1.9), MIN_REPEATS, BUSY)[0] == INCONCLUSIVE
    assert judge(NO_GAIN, (0.9, 1.1), MIN_REPEATS, BUSY)[0] == INCONCLUSIVE
    assert judge(NO_GAIN, (0.9, 1.1), MIN_REPEATS, QUIET)[0] == "confirmed"
    # Rules that load does not distort keep every verdict but "refuted" / "not met".
    much = Rule(10.0, 2.0)
    assert judge(much, (12.0, 30.0), MIN_REPEATS, BUSY)[0] == "confirmed"
    assert judge(much, (3.0, 6.0), MIN_REPEATS, BUSY)[0] == "qualified"
    assert judge(much, (1.0, 1.5), MIN_REPEATS, BUSY)[0] == INCONCLUSIVE
    assert judge(Rule(2.0, target=True), (1.0, 1.5), MIN_REPEATS, BUSY)[0] == INCONCLUSIVE
    assert judge(Rule(2.0, target=True), (2.5, 3.0), MIN_REPEATS, BUSY)[0] == "met"


def _paired_run(rng: random.Random, speedup: float, busy: bool, n: int) -> list[float]:
    """Per-repeat speedups over inline: a quiet machine jitters them by ~5%. On a busy one (two
    spinning processes on two cores) the parallel side loses part of the second core, while more
    runnable workers win a bigger share of both: a random mix of the two, and more jitter."""
    ratios = []
    for _ in range(n):
        jitter = rng.gauss(1.0, 0.25 if busy else 0.05)
        shift = rng.uniform(-0.8, 0.6) if busy else 0.0
        ratios.append(max(0.05, (speedup + shift) * jitter))
    return ratios


@pytest.mark.parametrize("seed", range(40))
def test_synthetic_noisy_runs_never_refute_what_a_quiet_run_confirms(seed: int) -> None:
    rng = random.Random(seed)
    for rule, speedup in ((PARALLEL, 1.9), (NO_GAIN, 1.0), (Rule(10.0, 2.0), 30.0)):
        quiet = judge(rule, median_interval(_paired_run(rng, speedup, False, 12)), 12, QUIET)
        assert quiet[0] == "confirmed", quiet
        for n in (6, 9, 15):
            ratios = _paired_run(rng, speedup * (1 if rule.load_sensitive else 5), True, n)
            busy, reason = judge(rule, median_interval(ratios), n, BUSY)
            assert busy in ("confirmed", INCONCLUSIVE)
            assert busy == "confirmed" or "busy machine" in reason or "spread" in reason
            if rule.load_sensitive:
                assert busy == INCONCLUSIVE


def test_unmeasured_is_inconclusive_not_a_verdict() -> None:
    assert judge(PARALLEL, None, 0)[0] == INCONCLUSIVE
    assert median_interval([math.nan] * 3) is None


def test_parallel_target_scales_with_cpus() -> None:
    assert parallel_target(1) == 1.0
    assert parallel_target(2) == pytest.approx(1.6)
    assert parallel_target(8) == pytest.approx(5.2)


def test_one_shot_verdicts() -> None:
    assert one_shot(holds=True, fails=False) == "confirmed"
    assert one_shot(holds=False, fails=False) == "qualified"
    assert one_shot(holds=True, fails=True) == "refuted"


@pytest.mark.parametrize("load", [BUSY, QUIET])
def test_a_one_shot_refutation_on_a_busy_machine_is_inconclusive(
    load: Load, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_load, "during", lambda start, end: load)
    killed = fact("runaway work in a process: gone after its deadline", 3.0, "s", since=0.0)
    row = killed.row("claims", verdict="refuted")
    assert row.verdict == (INCONCLUSIVE if load.busy else "refuted")
    assert ("busy machine" in row.reason) == load.busy
    assert killed.row("claims", verdict="confirmed").verdict == "confirmed"


def test_crossover_verdict_and_point() -> None:
    # Each task length is judged by the crossover's rule; the claim combines them.
    pays = Rule(1.15, 1.15, load_sensitive=True)
    short, long_ = judge(pays, (0.3, 0.5), 8)[0], judge(pays, (1.7, 1.9), 8)[0]
    assert (short, long_) == ("refuted", "confirmed")
    assert combine_verdicts([short, long_]) == "qualified"
    assert combine_verdicts([judge(pays, (1.2, 1.3), 8)[0], long_]) == "confirmed"
    assert combine_verdicts([short, judge(pays, (0.9, 1.1), 8)[0]]) == "refuted"
    assert judge(pays, (1.0, 1.5), 8)[0] == INCONCLUSIVE
    points = [(1e-4, 0.4), (1e-3, 0.9), (1e-2, 1.8)]
    point = crossover_point(points)
    assert point is not None
    assert 1e-3 < point < 1e-2
    assert crossover_point([(1e-4, 0.5)]) is None
    assert crossover_point([(1e-4, 1.5), (1e-3, 2.0)]) == 1e-4


def test_combined_verdict_of_a_claim() -> None:
    assert combine_verdicts(["confirmed", "confirmed", "n/a"]) == "confirmed"
    assert combine_verdicts(["confirmed", "refuted"]) == "qualified"
    assert combine_verdicts(["confirmed", INCONCLUSIVE]) == "confirmed"
    assert combine_verdicts([INCONCLUSIVE, "n/a"]) == INCONCLUSIVE
    assert combine_verdicts(["n/a", None]) == "n/a"

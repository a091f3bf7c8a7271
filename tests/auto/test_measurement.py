"""What a probe's numbers mean, on synthetic measurements (pure functions: no timing)."""

from __future__ import annotations

import math

from hybridio._runtime._auto import Measurement


def test_a_waiting_function_has_a_low_cpu_ratio() -> None:
    slept = Measurement(wall=0.03, cpu=0.0001, delay=0.0, window=0.029, fn_cpu=0.0001,
                        spin_cpu=0.028, spin_delay=0.0)  # fmt: skip
    assert slept.cpu_ratio < 0.05
    assert math.isnan(slept.gil_ratio)  # it barely computed: nothing to tell about the GIL


def test_a_gil_holder_keeps_the_spinner_waiting() -> None:
    python = Measurement(wall=0.03, cpu=0.025, delay=0.0, window=0.025, fn_cpu=0.024,
                         spin_cpu=0.001, spin_delay=0.0)  # fmt: skip
    assert python.cpu_ratio > 0.8
    assert python.gil_ratio > 0.9


def test_a_gil_releaser_leaves_the_spinner_free() -> None:
    sha = Measurement(wall=0.01, cpu=0.01, delay=0.0, window=0.01, fn_cpu=0.01,
                      spin_cpu=0.0099, spin_delay=0.0)  # fmt: skip
    assert sha.gil_ratio < 0.05


def test_waiting_for_a_core_is_not_waiting_for_the_gil() -> None:
    loaded = Measurement(wall=0.03, cpu=0.01, delay=0.02, window=0.03, fn_cpu=0.01,
                         spin_cpu=0.01, spin_delay=0.02)  # fmt: skip
    assert loaded.cpu_ratio == 1.0
    assert loaded.gil_ratio == 0.0


def test_the_loops_own_python_is_not_the_functions_hold() -> None:
    busy_loop = Measurement(wall=0.02, cpu=0.02, delay=0.0, window=0.02, fn_cpu=0.02,
                            spin_cpu=0.01, spin_delay=0.0, loop_cpu=0.01)  # fmt: skip
    assert busy_loop.gil_ratio == 0.0


def test_no_spinner_window_falls_back_to_the_whole_call() -> None:
    tiny = Measurement(wall=2e-6, cpu=2e-6, delay=0.0)
    assert tiny.cpu_ratio == 1.0
    assert math.isnan(tiny.gil_ratio)

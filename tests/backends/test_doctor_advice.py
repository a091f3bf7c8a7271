"""What `hybridio doctor` advises about interpreters and free-threaded builds (explicit facts)."""

from __future__ import annotations

import pytest

pytest.importorskip("click", reason="hybridio doctor is part of the cli extra")

from hybridio._doctor import Diagnosis


def _facts(*, free_threaded: bool, gil_on: bool, subinterpreters: bool) -> Diagnosis:
    return Diagnosis(
        python="3.13.5",
        implementation="CPython",
        executable="python3.13t",
        platform="linux",
        cpus=2,
        cpus_usable=2,
        cpu_model="test CPU",
        memory_bytes=2**33,
        extras={},
        free_threaded_build=free_threaded,
        gil_enabled=gil_on,
        start_method="forkserver",
        subinterpreters=subinterpreters,
        packages={"uvloop": "0.21"},
    )


def test_doctor_says_cpu_work_runs_on_threads_when_the_gil_is_off() -> None:
    advice = " ".join(_facts(free_threaded=True, gil_on=False, subinterpreters=True).advice())
    assert "kind='cpu' runs on threads here" in advice
    assert "kind='interpreter' is available" in advice
    advice = " ".join(_facts(free_threaded=True, gil_on=True, subinterpreters=False).advice())
    assert "kind='cpu' runs on threads" not in advice
    assert "needs Python 3.13+" in advice

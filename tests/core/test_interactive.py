"""Functions defined where there is no main file (``python -c``, stdin, a notebook) run in processes.

They travel by value with cloudpickle; without it the error says exactly what to do.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

PROGRAM = """
import anyio, hybridio

def triple(x):
    return 3 * x

async def main():
    async with hybridio.Runtime(cpu_workers=1) as rt:
        print(await rt.run_cpu(triple, 14))

anyio.run(main)
"""


def _run(args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        check=False,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("how", ["-c", "stdin"])
def test_a_function_of_an_interactive_main_runs_in_a_process(how: str) -> None:
    done = _run(["-c", PROGRAM]) if how == "-c" else _run(["-"], stdin=PROGRAM)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "42"


def test_without_cloudpickle_the_error_says_what_to_do() -> None:
    program = "import sys; sys.modules['cloudpickle'] = None\n" + PROGRAM
    done = _run(["-c", program])
    assert done.returncode != 0
    assert "NotPicklable" in done.stderr
    assert "pip install 'hybridio[cloudpickle]'" in done.stderr
    assert "move it into a module file" in done.stderr

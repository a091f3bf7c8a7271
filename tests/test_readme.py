"""The README's API example runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_api_example_runs(tmp_path: Path) -> None:
    text = README.read_text()
    section = text.split("## The API in one example", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "the README lost its API example"
    script = tmp_path / "example.py"
    script.write_text(match.group(1))
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1] == "3"  # parse("some words here")
    assert lines[2] == "255"  # int("ff", base=16)
    assert "KindStats(kind='cpu'" in lines[3]

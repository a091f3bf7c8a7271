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


def test_readme_says_how_to_use_what_make_installed() -> None:
    text = README.read_text()
    assert ". .venv/bin/activate" in text
    assert ".venv/bin/hybridio" in text


def test_make_demo_ends_with_the_readme_next_steps() -> None:
    makefile = (README.parent / "Makefile").read_text()
    recipe = makefile.split("\ndemo: $(STAMP)", 1)[1].split("\n\n", 1)[0]
    steps = re.findall(r'@echo "  \d\. (.+?)\s+#', recipe)
    assert len(steps) == 3, recipe
    text = README.read_text()
    for step in steps:
        assert f"$ {step}" in text, f"`make demo` suggests {step!r}, the README does not"


def test_readme_copies_no_measured_ratio() -> None:
    # Measured numbers live in the generated docs (docs/benchmarks.md, docs/claims.md): a ratio
    # copied by hand into the README goes stale at the next run.
    ratios = re.findall(r"\b\d+(?:\.\d+)?x\b", README.read_text())
    assert not ratios, f"README.md copies measured ratios {ratios}: link docs/benchmarks.md"

"""The server numbers in the docs are the ones generated from the committed run, everywhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hybridio.bench._server import render_numbers, replace_between_markers

ROOT = Path(__file__).parents[2]
RESULTS = ROOT / "docs" / "data" / "server-results.json"


@pytest.mark.parametrize("doc", ["docs/web.md", "docs/benchmarks.md"])
def test_docs_show_the_numbers_of_the_committed_run(doc: str) -> None:
    numbers = render_numbers(json.loads(RESULTS.read_text()))
    text = (ROOT / doc).read_text()
    # Regenerating changes nothing: the section is exactly the committed run's numbers.
    assert replace_between_markers(text, numbers) == text


def test_replacing_needs_the_markers() -> None:
    with pytest.raises(ValueError, match="server-numbers:start"):
        replace_between_markers("no markers here", "numbers")

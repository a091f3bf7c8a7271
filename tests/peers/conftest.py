"""Fixtures of the translated peer suites."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A private temporary directory per test, instead of pytest's shared base.

    Workers signal through files in it; pytest removes all but its 3 latest base directories,
    which another pytest session running on the same machine can do under a running test.
    """
    with tempfile.TemporaryDirectory(prefix="hybridio-peers-") as path:
        yield Path(path)

"""The crawl benchmark scenario, in its seconds-long tiny mode: shapes and agreement, not speed."""

from __future__ import annotations

from pathlib import Path

from hybridio.bench._crawl import run
from hybridio.bench._model import BenchContext


def test_tiny_crawl_scenario(tmp_path: Path) -> None:
    result = run(BenchContext(out=tmp_path, tiny=True))
    rows = {row.name: row for row in result.rows}
    assert rows["hybridio pages/s"].value > 0
    assert rows["hybridio pages/s"].verdict == "n/a"  # tiny runs are not judged
    # Scrapy is in the dev extra: the race runs, and both crawlers agree record for record.
    assert rows["scrapy pages/s"].value > 0
    assert rows["identical URLs and records"].verdict == "met", rows[
        "identical URLs and records"
    ].note
    assert rows["hybridio peak RSS"].ratio is not None
    assert result.extra["server"] in ("nginx", "hybridio testsite")

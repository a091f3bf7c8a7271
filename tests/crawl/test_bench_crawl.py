"""The crawl benchmark scenario, in its seconds-long tiny mode: shapes and agreement, not speed."""

from __future__ import annotations

from pathlib import Path

from hybridio.bench._crawl import run
from hybridio.bench._model import BenchContext


def test_tiny_crawl_scenario(tmp_path: Path) -> None:
    result = run(BenchContext(out=tmp_path, tiny=True))
    rows = {row.name: row for row in result.rows}
    assert rows["hybridio pages/s"].value > 0
    assert rows["hybridio pages/s"].verdict == "inconclusive"  # one run decides nothing
    # Scrapy is in the dev extra: the race runs, and both crawlers agree record for record.
    assert rows["scrapy pages/s"].value > 0
    assert rows["identical URLs and records"].verdict == "met", rows[
        "identical URLs and records"
    ].note
    assert rows["hybridio peak RSS"].ratio is not None
    assert rows["hybridio peak RSS"].baseline_unit == "MiB"
    assert rows["hybridio CPU"].unit == "% of one core"


def test_spider_depths_are_breadth_first_over_the_graph() -> None:
    from hybridio.crawl._scrapy_rival import breadth_first_depths

    links = {"/": ["/a", "/b", "/r"], "/b": ["/c"], "/c": ["/x", "/z"], "/a": ["/x"]}
    # A redirect is no extra hop: /r (depth 1) leads to /z at depth 1, not 3 via /c.
    assert breadth_first_depths("/", links, {"/r": "/z"}) == {
        "/": 0,
        "/a": 1,
        "/b": 1,
        "/r": 1,
        "/z": 1,
        "/c": 2,
        "/x": 2,
    }

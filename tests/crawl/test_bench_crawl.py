"""The crawl benchmark scenario, in its seconds-long tiny mode: shapes and agreement, not speed."""

from __future__ import annotations

from pathlib import Path

import pytest

from hybridio.bench import _crawl
from hybridio.bench._model import BenchContext, Row


def test_tiny_crawl_scenario(tmp_path: Path) -> None:
    result = _crawl.run(BenchContext(out=tmp_path, tiny=True))
    rows = {row.name: row for row in result.rows}
    assert rows["hybridio pages/s"].value > 0
    assert rows["hybridio pages/s"].verdict == "inconclusive"  # one run decides nothing
    # Scrapy is in the dev extra: the race runs, and both crawlers agree record for record.
    assert rows["hybridio pages/s"].baseline == "scrapy pages/s"
    assert rows["hybridio pages/s"].baseline_value > 0  # type: ignore[operator]
    assert rows["identical URLs and records"].verdict == "met", rows[
        "identical URLs and records"
    ].note
    assert rows["hybridio peak RSS"].ratio is not None
    assert rows["hybridio peak RSS"].baseline_unit == "MiB"
    assert rows["hybridio CPU"].unit == rows["hybridio CPU"].baseline_unit == "% of one core"
    assert len(rows) == 4  # Scrapy's numbers are the baselines of hybridio's rows


def test_without_the_real_site_its_race_is_a_row_saying_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raced = []

    def race(ctx: BenchContext, root: Path, label: str = "", pages: int = 0) -> list[Row]:
        raced.append(label)
        return []

    monkeypatch.setattr(_crawl, "PYTHON_DOCS", tmp_path / "not-installed")
    monkeypatch.setattr(_crawl, "_race", race)
    result = _crawl.run(BenchContext(out=tmp_path, quick=True))
    assert raced == [""]  # the generated site only
    (row,) = result.rows
    assert (row.name, row.verdict) == ("real site: hybridio pages/s", "n/a")
    assert row.note == "not run: apt-get install python3.11-doc nginx-light"


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

"""Scenario ``crawl``: ``hybridio crawl`` against a breadth-first Scrapy spider (docs/crawl.md)."""

from __future__ import annotations

import json
import shutil
import string
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from .._extras import require_extra
from ..crawl._testsite import generate_site
from ._harness import free_port, measure_tree, running
from ._model import BenchContext, Row, ScenarioResult, Series
from ._targets import CRAWL_GENERATED, CRAWL_REAL

require_extra("hybridio bench crawl", "scrapy")  # else the scenario is skipped, saying so

SCENARIO = "crawl"
PYTHON_DOCS = Path("/usr/share/doc/python3.11/html")
NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
REAL_SITE = "apt-get install python3.11-doc nginx-light"  # as ``make demo`` does
UNITS = (("pages/s", "pages/s"), ("CPU", "% of one core"), ("peak RSS", "MiB"))
SAME = "same records, every run"
#: Each crawler after ``python -m`` (then OUT.jsonl, URL), at Scrapy's concurrency (16, 8 per host).
CRAWLERS = {
    "hybridio": ["hybridio", "crawl", "--quiet", "-c", "16", "--per-host", "8", "--out"],
    "scrapy": ["hybridio.crawl._scrapy_rival"],
}
_NGINX = string.Template(resources.files(__package__).joinpath("nginx.conf.in").read_text())


@contextmanager
def _site(root: Path) -> Iterator[str]:
    """Serve ``root`` on 127.0.0.1 in a process of its own: nginx when installed."""
    port, serve = free_port(), [sys.executable, "-m", "hybridio", "testsite", "serve", str(root)]
    with tempfile.TemporaryDirectory(prefix="hybridio-site-") as tmp:
        conf = Path(tmp, "nginx.conf")
        conf.write_text(_NGINX.substitute(tmp=tmp, port=port, root=root.resolve()))
        command = [NGINX, "-c", str(conf), "-p", tmp] if NGINX else [*serve, "--port", str(port)]
        with running(command, listen=port, stdout=subprocess.DEVNULL):
            yield f"http://127.0.0.1:{port}/"


def _crawl(crawler: str, url: str) -> tuple[dict[str, float], dict[str, Any]]:
    """One crawl in a fresh process: pages/s, CPU (% of a core) and peak RSS (MiB); its records."""
    with tempfile.TemporaryDirectory(prefix="hybridio-crawl-bench-") as work:
        out = Path(work, f"{crawler}.jsonl")
        seconds, cpu, rss = measure_tree([sys.executable, "-m", *CRAWLERS[crawler], str(out), url])
        records = {rec["url"]: rec for rec in map(json.loads, out.read_text().splitlines())}
    return {"pages/s": len(records) / seconds, "CPU": 100 * cpu / seconds, "peak RSS": rss}, records


def _differences(a: dict[str, Any], b: dict[str, Any], names: str) -> Iterator[str]:
    """What differs between two crawls' URLs and records: nothing when they are the same."""
    if a.keys() != b.keys():
        yield f"URLs differ ({names}), e.g. {sorted(a.keys() ^ b.keys())[:3]}"
    elif url := next((url for url in sorted(a) if a[url] != b[url]), None):
        fields = {k: (v, b[url].get(k)) for k, v in a[url].items() if v != b[url].get(k)}
        yield f"records differ ({names}), e.g. {url}: {fields}"


def _race(ctx: BenchContext, root: Path, label: str = "", pages: int = 0) -> list[Row]:
    """Serve ``root`` and crawl it with each crawler in turn until the pages/s ratio is settled."""
    made = {q: Series(f"{label}hybridio {q}", unit, f"{label}scrapy {q}") for q, unit in UNITS}
    ratio, rule = made["pages/s"], CRAWL_REAL if label else CRAWL_GENERATED
    crawls: list[tuple[str, dict[str, Any]]] = []
    with _site(root) as url:
        for repeat in ctx.rounds((ratio, rule)):
            runs = {}
            for crawler in list(CRAWLERS)[:: -1 if repeat % 2 else 1]:
                ctx.progress(f"{label}{crawler}, run {repeat + 1}")
                runs[crawler], records = _crawl(crawler, url)
                crawls.append((f"{crawler} run {repeat + 1}", records))
            for what, series in made.items():
                series.add(runs["hybridio"][what], runs["scrapy"][what])
    first, a = crawls[0]
    diffs = [f"hybridio missed some of the {pages} pages"] if pages and len(a) != pages else []
    diffs += [diff for name, b in crawls[1:] for diff in _differences(a, b, f"{first}, {name}")]
    note = "; ".join(diffs) or f"{len(a)} pages, every record equal in every run"
    value, verdict = (0.0, "not met") if diffs else (1.0, "met")
    name = f"{label}identical URLs and records"
    same = Row(SCENARIO, name, value, "bool", ratio.n, target=SAME, verdict=verdict, note=note)
    return [*(s.row(SCENARIO, rule=rule if s is ratio else None) for s in made.values()), same]


def run(ctx: BenchContext) -> ScenarioResult:
    """Race both crawlers on a generated site, then (outside the tiny mode) on CPython's docs."""
    pages, words = ctx.pick(2000, 400, 40), ctx.pick(1500, 1500, 60)
    about = f"{pages} generated pages, then CPython's docs; served by {NGINX or 'testsite serve'}."
    result = ScenarioResult(SCENARIO, "Crawler vs Scrapy on a local site", about)
    with tempfile.TemporaryDirectory(prefix="hybridio-site-") as root:
        ctx.progress(f"generating a {pages}-page site")
        site = generate_site(Path(root), pages=pages, seed=7, words_per_page=words, quirks=True)
        result.rows += _race(ctx, Path(root), pages=len(site.reachable()))
    if not ctx.tiny and (PYTHON_DOCS / "index.html").exists() and NGINX:
        result.rows += _race(ctx, PYTHON_DOCS, "real site: ")
    elif not ctx.tiny:
        missing = Series("real site: hybridio pages/s", "pages/s")
        result.rows.append(missing.row(SCENARIO, verdict="n/a", note=f"not run: {REAL_SITE}"))
    return result

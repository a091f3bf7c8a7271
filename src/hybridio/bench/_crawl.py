"""Scenario ``crawl``: ``hybridio crawl`` against a breadth-first Scrapy spider
(``hybridio.crawl._scrapy_rival``) on a generated site and on CPython's docs; docs/crawl.md
("Against Scrapy") gives the method."""

from __future__ import annotations

import itertools
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
from ._harness import ensure_debian_packages, free_port, measure_tree, running
from ._model import BenchContext, Row, ScenarioResult, Series
from ._plots import bar_plot
from ._targets import CRAWL_GENERATED, CRAWL_REAL

__all__ = ["run"]

require_extra("hybridio bench crawl", "scrapy")  # else the scenario is skipped, saying so

SCENARIO = "crawl"
PYTHON_DOCS = Path("/usr/share/doc/python3.11/html")
#: The Debian packages of the real site, and a file each installs.
REAL_SITE = {"python3.11-doc": PYTHON_DOCS / "index.html", "nginx-light": Path("/usr/sbin/nginx")}
UNITS = {"pages/s": "pages/s", "CPU": "% of one core", "peak RSS": "MiB"}
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
    port, nginx = free_port(), shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    with tempfile.TemporaryDirectory(prefix="hybridio-site-") as tmp:
        if nginx:
            conf = Path(tmp, "nginx.conf")
            conf.write_text(_NGINX.substitute(tmp=tmp, port=port, root=root.resolve()))
            command = [nginx, "-c", str(conf), "-p", tmp]
        else:
            command = [sys.executable, "-m", "hybridio", "testsite", "serve", str(root)]
            command += ["--port", str(port)]
        with running(command, listen=port, stdout=subprocess.DEVNULL):
            yield f"http://127.0.0.1:{port}/"


def _crawl(crawler: str, url: str, work: Path) -> tuple[dict[str, float], dict[str, Any]]:
    """One crawl in a fresh process: pages/s, CPU (% of a core) and peak RSS (MiB); its records."""
    out = work / f"{crawler}.jsonl"
    for stale in (out, out.with_name(out.name + ".state")):  # else hybridio crawl resumes
        stale.unlink(missing_ok=True)
    seconds, cpu, rss = measure_tree([sys.executable, "-m", *CRAWLERS[crawler], str(out), url])
    records = {record["url"]: record for record in map(json.loads, out.read_text().splitlines())}
    return {"pages/s": len(records) / seconds, "CPU": 100 * cpu / seconds, "peak RSS": rss}, records


def _differences(a: dict[str, Any], b: dict[str, Any], names: str) -> str:
    """'' when two crawls wrote the same URLs and records, else what differs."""
    if a.keys() != b.keys():
        return f"URLs differ ({names}), e.g. {sorted(a.keys() ^ b.keys())[:3]}"
    url = next((url for url in sorted(a) if a[url] != b[url]), None)
    if url is None:
        return ""
    fields = {k: (v, b[url].get(k)) for k, v in a[url].items() if v != b[url].get(k)}
    return f"records differ ({names}), e.g. {url}: {fields}"


def _race(ctx: BenchContext, result: ScenarioResult, url: str, label: str, pages: int = 0) -> None:
    """Crawl ``url`` with each crawler in turn until the pages/s ratio is settled; add the rows."""
    made = {}
    for crawler, (what, unit) in itertools.product(CRAWLERS, UNITS.items()):
        baseline = f"{label}scrapy {what}" if crawler == "hybridio" and what != "CPU" else None
        made[crawler, what] = Series(f"{label}{crawler} {what}", unit, baseline)
    ratio, rule = made["hybridio", "pages/s"], CRAWL_REAL if label else CRAWL_GENERATED
    crawls: list[tuple[str, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory(prefix="hybridio-crawl-bench-") as work:
        for repeat in ctx.rounds((ratio, rule)):
            runs = {}
            for crawler in list(CRAWLERS)[:: -1 if repeat % 2 else 1]:
                ctx.progress(f"{label}{crawler}, run {repeat + 1}")
                runs[crawler], records = _crawl(crawler, url, Path(work))
                crawls.append((f"{crawler} run {repeat + 1}", records))
            for (crawler, what), series in made.items():
                series.add(runs[crawler][what], runs["scrapy"][what] if series.baseline else None)
    first, a = crawls[0]
    problems = [_differences(a, b, f"{first}, {name}") for name, b in crawls[1:]]
    problems = [problem for problem in problems if problem]
    if pages and len(a) != pages:
        problems.append(f"hybridio missed some of the {pages} pages")
    name, verdict = f"{label}identical URLs and records", "not met" if problems else "met"
    note = "; ".join(problems) or f"{len(a)} pages, every record equal in every run"
    value = float(not problems)
    same = Row(SCENARIO, name, value, "bool", ratio.n, target=SAME, verdict=verdict, note=note)
    result.rows += [s.row(SCENARIO, rule=rule if s is ratio else None) for s in made.values()]
    result.rows.append(same)
    if not ctx.tiny:
        result.plots.append(f"crawl_{'real_' if label else ''}pages_per_second.png")
        title = f"Crawl throughput, {'CPython docs' if label else 'generated site'}"
        bars = {crawler: made[crawler, "pages/s"] for crawler in CRAWLERS}
        bar_plot(ctx.out / result.plots[-1], f"{title} (median, 95% interval)", "pages/s", bars)


def run(ctx: BenchContext) -> ScenarioResult:
    """Race both crawlers on a generated site, then (outside the tiny mode) on CPython's docs."""
    pages, words = ctx.pick(2000, 400, 40), ctx.pick(1500, 1500, 60)
    about = f"A generated site of {pages} pages, then CPython's docs, served on 127.0.0.1 by nginx "
    about += "(else the test-site server) and crawled by each in turn; see docs/crawl.md."
    result = ScenarioResult(SCENARIO, "Crawler vs Scrapy on a local site", about)
    with tempfile.TemporaryDirectory(prefix="hybridio-site-") as root:
        ctx.progress(f"generating a {pages}-page site")
        site = generate_site(Path(root), pages=pages, seed=7, words_per_page=words, quirks=True)
        with _site(Path(root)) as url:
            _race(ctx, result, url, "", len(site.reachable()))
    if not ctx.tiny:
        ctx.progress("real site: checking python3.11-doc and nginx-light")
        if problem := ensure_debian_packages(REAL_SITE):
            missing = Series("real site: hybridio pages/s", "pages/s")
            result.rows.append(missing.row(SCENARIO, verdict="n/a", note=f"not run: {problem}"))
        else:
            with _site(PYTHON_DOCS) as url:
                _race(ctx, result, url, "real site: ")
    return result

"""Scenario ``crawl``: ``hybridio crawl`` against a breadth-first Scrapy spider (``_crawl_spider``)
on the same site, served on 127.0.0.1 by nginx (else hybridio's test-site server): a generated
site, then CPython's documentation (Debian's python3.11-doc). Each crawler runs in a fresh process,
alternating; both must write the same records. The method is in docs/crawl.md ("Against Scrapy").
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..crawl._testsite import generate_site
from ._harness import ensure_debian_packages, free_port, measure_tree, running
from ._model import BenchContext, Row, ScenarioResult, Series
from ._plots import bar_plot
from ._targets import CRAWL_GENERATED, CRAWL_REAL

__all__ = ["run"]

SCENARIO = "crawl"
PYTHON_DOCS = Path("/usr/share/doc/python3.11/html")
#: The Debian packages of the real site, and a file each installs.
REAL_SITE = {"python3.11-doc": PYTHON_DOCS / "index.html", "nginx-light": Path("/usr/sbin/nginx")}
UNITS = {"pages/s": "pages/s", "CPU": "% of one core", "peak RSS": "MiB"}
_CLI = [sys.executable, "-c", "from hybridio._cli import main; main()"]
_NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    types {{ text/html html htm; text/plain txt; text/css css; application/javascript js;
             image/png png; image/svg+xml svg; }}
    default_type application/octet-stream;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_requests 100000;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location = /site.json {{ return 404; }}
    }}
}}
"""


def _nginx() -> str | None:
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


@contextmanager
def _site(root: Path) -> Iterator[str]:
    """Serve ``root`` on 127.0.0.1 in a process of its own: nginx when installed."""
    port, nginx = free_port(), _nginx()
    with tempfile.TemporaryDirectory(prefix="hybridio-site-") as tmp:
        command = [*_CLI, "testsite", "serve", str(root), "--port", str(port)]
        if nginx:
            conf = Path(tmp, "nginx.conf")
            conf.write_text(_NGINX_CONF.format(tmp=tmp, port=port, root=root.resolve()))
            command = [nginx, "-c", str(conf), "-p", tmp]
        with running(command, listen=port, stdout=subprocess.DEVNULL):
            yield f"http://127.0.0.1:{port}/"


def _crawl(crawler: str, url: str, work: Path) -> dict[str, Any]:
    """One crawl in a fresh process: pages/s, CPU (% of a core), peak RSS (MiB), its records."""
    out = work / f"{crawler}.jsonl"
    for stale in (out, out.with_name(out.name + ".state")):
        stale.unlink(missing_ok=True)
    if crawler == "hybridio":
        options = ["--out", str(out), "--quiet", "--concurrency", "16", "--per-host", "8"]
        command = [*_CLI, "crawl", url, *options]
    else:
        command = [sys.executable, "-m", "hybridio.bench._crawl_spider", url, str(out)]
    seconds, cpu, rss = measure_tree(command)
    records = {record["url"]: record for record in map(json.loads, out.read_text().splitlines())}
    return {
        "pages/s": len(records) / seconds,
        "CPU": 100 * cpu / seconds,
        "peak RSS": rss,
        "records": records,
    }


def _differences(a: dict[str, Any], b: dict[str, Any], names: str) -> str:
    """'' when two crawls wrote the same URLs and records, else what differs."""
    if a.keys() != b.keys():
        return f"URLs differ ({names}), e.g. {sorted(a.keys() ^ b.keys())[:3]}"
    url = next((url for url in sorted(a) if a[url] != b[url]), None)
    if url is None:
        return ""
    fields = {k: (v, b[url].get(k)) for k, v in a[url].items() if v != b[url].get(k)}
    return f"records differ ({names}), e.g. {url}: {fields}"


def _race(
    ctx: BenchContext, result: ScenarioResult, url: str, work: Path, label: str, pages: int = 0
) -> None:
    """Crawl ``url`` with each crawler in turn until the pages/s ratio is settled; add the rows."""
    crawlers = ["hybridio", "scrapy"] if importlib.util.find_spec("scrapy") else ["hybridio"]
    made = {}
    for crawler, (what, unit) in itertools.product(crawlers, UNITS.items()):
        paired = crawler == "hybridio" and what != "CPU"
        baseline = f"{label}scrapy {what}" if paired else None
        made[crawler, what] = Series(f"{label}{crawler} {what}", unit, baseline)
    ratio, rule = made["hybridio", "pages/s"], CRAWL_REAL if label else CRAWL_GENERATED
    records: dict[str, list[dict[str, Any]]] = {crawler: [] for crawler in crawlers}
    for repeat in ctx.rounds((ratio, rule)):
        runs = {}
        for crawler in crawlers[:: -1 if repeat % 2 else 1]:
            ctx.progress(f"{label}{crawler}, run {repeat + 1}")
            runs[crawler] = _crawl(crawler, url, work)
            records[crawler].append(runs[crawler]["records"])
        for (crawler, what), series in made.items():
            series.add(runs[crawler][what], runs["scrapy"][what] if series.baseline else None)
    if len(crawlers) == 1:
        why = "scrapy is not installed (pip install 'hybridio[scrapy]'): the race was not run"
        result.rows.append(ratio.row(SCENARIO, verdict="n/a", note=why))
        return
    first = records["hybridio"][0]
    pairs = zip(records["hybridio"], records["scrapy"], strict=True)
    problems = [_differences(a, b, "hybridio, Scrapy") for a, b in pairs]
    problems += [
        _differences(first, b, f"hybridio runs 1, {i}")
        for i, b in enumerate(records["hybridio"], 1)
    ]
    if pages and any(len(run) != pages for run in records["hybridio"]):
        problems.append(f"hybridio missed some of the {pages} pages")
    problems = [problem for problem in problems if problem]
    verdict, note = (
        ("not met", "; ".join(problems))
        if problems
        else ("met", f"{len(first)} pages, every record equal in every run")
    )
    result.rows += [
        series.row(SCENARIO, rule=rule if series is ratio else None) for series in made.values()
    ]
    name, target = f"{label}identical URLs and records", "same records, every run"
    result.rows.append(
        Row(
            SCENARIO,
            name,
            float(not problems),
            "bool",
            ratio.n,
            target=target,
            verdict=verdict,
            note=note,
        )
    )
    if not ctx.tiny:
        result.plots.append(f"crawl_{'real_' if label else ''}pages_per_second.png")
        title = f"Crawl throughput, {'CPython docs' if label else 'generated site'} (median, 95% interval)"
        bar_plot(
            ctx.out / result.plots[-1], title, "pages/s", {c: made[c, "pages/s"] for c in crawlers}
        )


def run(ctx: BenchContext) -> ScenarioResult:
    """Race both crawlers on a generated site, then (outside the tiny mode) on CPython's docs."""
    pages = ctx.pick(2000, 400, 40)
    result = ScenarioResult(
        SCENARIO,
        "Crawler vs Scrapy on a local site",
        f"A generated site of {pages} pages (with the quirk pages), then CPython's documentation, "
        f"served by {'nginx' if _nginx() else 'the test-site server'} on 127.0.0.1, crawled "
        "alternately by `hybridio crawl` and a breadth-first Scrapy spider, both at Scrapy's "
        "default concurrency (16, 8 per host); see docs/crawl.md.",
    )
    with tempfile.TemporaryDirectory(prefix="hybridio-crawl-bench-") as work:
        ctx.progress(f"generating a {pages}-page site")
        words = ctx.pick(1500, 1500, 60)
        site = generate_site(
            Path(work, "site"), pages=pages, seed=7, words_per_page=words, quirks=True
        )
        with _site(Path(work, "site")) as url:
            _race(ctx, result, url, Path(work), "", len(site.reachable()))
        if ctx.tiny:
            return result
        ctx.progress("real site: checking python3.11-doc and nginx-light")
        problem = ensure_debian_packages(REAL_SITE)
        if problem:
            row = Series("real site: hybridio pages/s", "pages/s").row(
                SCENARIO, verdict="n/a", note=f"not run: {problem}"
            )
            result.rows.append(row)
            return result
        with _site(PYTHON_DOCS) as url:
            _race(ctx, result, url, Path(work), "real site: ")
    return result

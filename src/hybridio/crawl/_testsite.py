"""A deterministic test site: HTML pages in a tree, with faults on demand, and its manifest.

The same seed and options always give the same bytes. Pages form a tree (page ``i``'s parent is
``(i - 1) // branching``) and link only to their children, siblings, parent and the home page,
so every page's depth is the same whatever order a crawler fetches them in. ``site.json`` lists
every in-site link, redirect and fault, so tests compute what a crawl must find from data, not
from the crawler's own code.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import Any
from urllib.parse import unquote

__all__ = [
    "MANIFEST",
    "QUIRK_TITLES",
    "SiteManifest",
    "generate_site",
    "load_manifest",
    "page_path",
    "write_site",
]

MANIFEST = "site.json"
_OFFSITE = ("http://offsite.test", "https://example.invalid")


def page_path(i: int) -> str:
    """URL path of page ``i``: ``/`` for the home page, ``/p/<i>.html`` otherwise."""
    return "/" if i == 0 else f"/p/{i}.html"


@dataclass
class SiteManifest:
    """What was generated: pages, in-site links per path, redirects, faults, robots rules."""

    seed: int
    pages: int
    links: dict[str, list[str]] = field(default_factory=dict)
    redirects: dict[str, str] = field(default_factory=dict)
    disallowed: list[str] = field(default_factory=list)
    huge: list[str] = field(default_factory=list)
    binary: list[str] = field(default_factory=list)
    malformed: list[str] = field(default_factory=list)
    offsite_links: int = 0
    crawl_delay: float | None = None
    content_types: dict[str, str] = field(default_factory=dict)

    def reachable(self, max_depth: int | None = None) -> dict[str, int]:
        """Every HTML path a polite crawl from ``/`` must record, with its depth.

        Follows links and redirects, skips robots-disallowed prefixes, redirect loops, and
        non-HTML or oversized files (which are fetched but give no record).
        """
        depth = {"/": 0}
        queue = ["/"]
        for path in queue:
            for link in self.links.get(path, []):
                target, hops = link, 0
                while target in self.redirects and hops < 10:
                    target, hops = self.redirects[target], hops + 1
                if target in self.redirects or target in depth:
                    continue
                if any(target.startswith(prefix) for prefix in self.disallowed):
                    continue
                if max_depth is not None and depth[path] + 1 > max_depth:
                    continue
                depth[target] = depth[path] + 1
                queue.append(target)
        skipped = set(self.huge) | set(self.binary)
        return {path: d for path, d in depth.items() if path not in skipped}


def _vocabulary(rng: random.Random, size: int = 2000) -> list[str]:
    syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "ze", "ba", "do", "fu", "gi", "ha"]
    words: dict[str, None] = {}
    while len(words) < size:
        words["".join(rng.choice(syllables) for _ in range(rng.randint(1, 4)))] = None
    return list(words)


class _Writer:
    def __init__(self, root: Path, seed: int, words_per_page: int) -> None:
        self.root = root
        self.rng = random.Random(seed)
        self.vocabulary = _vocabulary(self.rng)
        # Zipf-like frequencies, so that top_words has clear winners and some ties.
        self.cum_weights = list(
            accumulate(1.0 / (rank + 1) for rank in range(len(self.vocabulary)))
        )
        self.words_per_page = words_per_page

    def text(self, n: int) -> str:
        return " ".join(self.rng.choices(self.vocabulary, cum_weights=self.cum_weights, k=n))

    def write(self, path: str, body: bytes) -> None:
        target = self.root / ("index.html" if path == "/" else path.lstrip("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)

    def page(self, path: str, title: str, hrefs: list[str], paragraphs: int = 8) -> bytes:
        chunks = [f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{title}</title>"]
        chunks.append("</head><body><nav><a href='/'>Home</a></nav>\n")
        chunks.append(f"<h1>{self.text(4)}</h1>\n")
        per_paragraph = max(1, self.words_per_page // paragraphs)
        for index in range(paragraphs):
            inline = hrefs[index::paragraphs]
            anchors = " ".join(f"<a href='{href}'>{self.text(2)}</a>" for href in inline)
            chunks.append(f"<p>{self.text(per_paragraph)} <b>{self.text(3)}</b> {anchors}</p>\n")
        chunks.append(f"<ul><li>{self.text(5)}</li></ul><footer>{path}</footer></body></html>\n")
        return "".join(chunks).encode()


def generate_site(
    directory: Path | str,
    *,
    pages: int = 100,
    seed: int = 0,
    branching: int = 10,
    words_per_page: int = 1500,
    offsite_links: int = 2,
    robots_disallow: tuple[str, ...] = (),
    crawl_delay: float | None = None,
    huge_pages: int = 0,
    huge_size: int = 6 * 1024 * 1024,
    binary_files: int = 0,
    malformed_pages: int = 0,
    redirect_loops: int = 0,
    redirects: int = 0,
    quirks: bool = False,
) -> SiteManifest:
    """Write a test site of ``pages`` HTML pages (plus fault files) into ``directory``.

    Fault options add files linked from the home page: ``huge_pages`` of ``huge_size`` bytes,
    ``binary_files`` (application/octet-stream), ``malformed_pages`` (broken HTML that still
    has text and a link), ``redirect_loops`` (``/loop/k/a`` <-> ``/loop/k/b``), ``redirects``
    (``/go/k`` -> a page), and ``robots_disallow`` prefixes, each with a page under it.
    ``quirks`` adds the pages of ``QUIRK_TITLES`` (encodings and links a browser reads right).
    Returns the manifest, also written to ``site.json``.
    """
    if pages < 1:
        raise ValueError(f"pages must be >= 1, got {pages!r}")
    if branching < 1:
        raise ValueError(f"branching must be >= 1, got {branching!r}")
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    writer = _Writer(root, seed, words_per_page)
    manifest = SiteManifest(seed=seed, pages=pages, crawl_delay=crawl_delay)
    extra_home: list[str] = []

    for k, prefix in enumerate(robots_disallow):
        path = f"{prefix.rstrip('/')}/secret-{k}.html"
        manifest.disallowed.append(prefix)
        manifest.links[path] = ["/"]
        writer.write(path, writer.page(path, f"Secret {k}", ["/"]))
        extra_home.append(path)
    for k in range(huge_pages):
        path = f"/huge/{k}.html"
        manifest.huge.append(path)
        filler = b"<p>" + b"lorem ipsum dolor " * (huge_size // 18 + 1) + b"</p>"
        writer.write(path, b"<html><title>Huge</title><body>" + filler + b"</body></html>")
        extra_home.append(path)
    for k in range(binary_files):
        path = f"/files/{k}.bin"
        manifest.binary.append(path)
        writer.write(path, writer.rng.randbytes(4096))
        extra_home.append(path)
    for k in range(malformed_pages):
        path = f"/bad/{k}.html"
        manifest.malformed.append(path)
        manifest.links[path] = ["/p/1.html"] if pages > 1 else ["/"]
        body = (
            b"<html><head><title>Broken <b>page</title><body><p>unclosed <div><p>text \xff\xfe"
            b" <a href='/p/1.html'>one<a href='javascript:void(0)'>js</a><table><tr><td>cell"
            b"<p>more words here <script>if (a < b) { x = '</p>' }</script> <<<>>> &bogus; "
            + writer.text(50).encode()
            + b"<!-- never closed comment"
        )
        writer.write(path, body)
        extra_home.append(path)
    if quirks:
        extra_home += _write_quirks(writer, manifest)
    for k in range(redirect_loops):
        a, b = f"/loop/{k}/a", f"/loop/{k}/b"
        manifest.redirects[a], manifest.redirects[b] = b, a
        extra_home.append(a)
    for k in range(redirects):
        # A child of the home page, which also links to it directly: reached through the redirect
        # or the link, the page is at depth 1, so its depth is the same in any crawl order.
        target = page_path(1 + (k * 7) % min(branching, pages - 1)) if pages > 1 else "/"
        manifest.redirects[f"/go/{k}"] = target
        extra_home.append(f"/go/{k}")

    for i in range(pages):
        path = page_path(i)
        parent = (i - 1) // branching if i else None
        children = list(range(i * branching + 1, min(pages, (i + 1) * branching + 1)))
        siblings = [] if parent is None else list(range(parent * branching + 1, i))[-3:]
        hrefs = [page_path(c) for c in children]
        # The same targets again, written differently: relative, with a fragment, absolute path.
        hrefs += [f"{s}.html" if i else page_path(s) for s in siblings]
        if children:
            hrefs.append(page_path(children[0]) + "#top")
        if parent is not None:
            hrefs.append(page_path(parent))
        hrefs.append("/")
        hrefs += [f"{_OFFSITE[n % 2]}/{i}/{n}.html" for n in range(offsite_links)]
        if i == 0:
            hrefs += extra_home
        in_site = [h for h in hrefs if not h.startswith("http")]
        manifest.offsite_links += len(hrefs) - len(in_site)
        resolved = [_resolve(h) for h in in_site]
        manifest.links[path] = list(dict.fromkeys(resolved))
        writer.write(path, writer.page(path, f"Page {i}: {writer.text(3)}", hrefs))

    robots = ["User-agent: *"]
    robots += [f"Disallow: {prefix}" for prefix in robots_disallow] or ["Disallow:"]
    if crawl_delay is not None:
        robots.append(f"Crawl-delay: {crawl_delay}")
    (root / "robots.txt").write_text("\n".join(robots) + "\n")
    (root / MANIFEST).write_text(json.dumps(asdict(manifest), indent=1))
    return manifest


#: The quirk pages of ``generate_site(quirks=True)``: URL path -> the title a browser shows.
QUIRK_TITLES = {
    "/quirks/latin1-meta.html": "Café Müller",
    "/quirks/caf%C3%A9.html": "Linked as café from a latin-1 page",
    "/quirks/header-charset.html": "Größe only in the header",
    "/quirks/smart-quotes.html": "\u201cQuoted\u201d \u2013 windows-1252",
    "/quirks/utf16.html": "UTF-16 page \u2713",
    "/quirks/only-from-utf16.html": "Reached only from the UTF-16 page",
    "/quirks/backslash.html": "Backslash links",
    "/quirks/sub/back.html": "Behind a backslash",
}


def _write_quirks(writer: _Writer, manifest: SiteManifest) -> list[str]:
    """Pages real sites have and a naive crawler misreads; their paths, to link from home."""

    def html(title: str, body: str, meta: str = "") -> str:
        return f"<!doctype html><html><head>{meta}<title>{title}</title></head><body>{body}</body></html>"

    titles = QUIRK_TITLES
    text = writer.text(40)
    pages = {
        "/quirks/latin1-meta.html": html(
            titles["/quirks/latin1-meta.html"],
            f"<p>Müller's café {text}</p><p><a href='café.html'>café</a></p>",
            "<meta charset=iso-8859-1>",
        ).encode("latin-1"),
        "/quirks/caf%C3%A9.html": html(
            titles["/quirks/caf%C3%A9.html"], f"<p>{text}</p>", "<meta charset=utf-8>"
        ).encode(),
        "/quirks/header-charset.html": html(
            titles["/quirks/header-charset.html"], f"<p>Größe {text}</p>"
        ).encode("latin-1"),
        "/quirks/smart-quotes.html": html(
            titles["/quirks/smart-quotes.html"],
            f"<p>\u201cQuoted\u201d text \u2013 {text}</p>",
            '<meta http-equiv="Content-Type" content="text/html; charset=windows-1252">',
        ).encode("cp1252"),
        "/quirks/utf16.html": "\ufeff".encode("utf-16-le")
        + html(
            titles["/quirks/utf16.html"],
            f"<p>{text}</p><p><a href='only-from-utf16.html'>next</a></p>",
        ).encode("utf-16-le"),
        "/quirks/only-from-utf16.html": html(
            titles["/quirks/only-from-utf16.html"], f"<p>{text}</p>"
        ).encode(),
        "/quirks/backslash.html": html(
            titles["/quirks/backslash.html"], f"<p>{text} <a href='sub\\back.html'>back</a></p>"
        ).encode(),
        "/quirks/sub/back.html": html(titles["/quirks/sub/back.html"], f"<p>{text}</p>").encode(),
    }
    links = {
        "/quirks/latin1-meta.html": ["/quirks/caf%C3%A9.html"],
        "/quirks/utf16.html": ["/quirks/only-from-utf16.html"],
        "/quirks/backslash.html": ["/quirks/sub/back.html"],
    }
    for path, body in pages.items():
        writer.write(unquote(path), body)
        manifest.links[path] = [*links.get(path, []), "/"]
    manifest.content_types["/quirks/header-charset.html"] = "text/html; charset=ISO-8859-1"
    linked = {link for targets in links.values() for link in targets}
    return [path for path in pages if path not in linked]


def write_site(
    directory: Path | str,
    pages: dict[str, bytes],
    links: dict[str, list[str]] | None = None,
    *,
    content_types: dict[str, str] | None = None,
    redirects: dict[str, str] | None = None,
    robots: str = "User-agent: *\nDisallow:\n",
) -> SiteManifest:
    """Write a hand-made site (URL path -> body) that ``TestSiteServer`` can serve.

    ``links`` (path -> in-site paths it links to) goes into the manifest, for
    ``SiteManifest.reachable``; ``content_types`` overrides the served Content-Type per path;
    ``redirects`` maps paths to the paths they redirect to (302).
    """
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    writer = _Writer(root, 0, 1)
    for path, body in pages.items():
        writer.write(unquote(path), body)
    manifest = SiteManifest(seed=0, pages=len(pages), links=dict(links or {}))
    manifest.content_types = dict(content_types or {})
    manifest.redirects = dict(redirects or {})
    (root / "robots.txt").write_text(robots)
    (root / MANIFEST).write_text(json.dumps(asdict(manifest), indent=1))
    return manifest


def _resolve(href: str) -> str:
    href = href.split("#", 1)[0]
    return href if href.startswith("/") else f"/p/{href}"


def load_manifest(directory: Path | str) -> SiteManifest:
    """Read the ``site.json`` of a generated site; a clear error when it is not one."""
    path = Path(directory) / MANIFEST
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path} not found: generate the site first with `hybridio testsite generate DIR`"
        ) from None
    return SiteManifest(**data)

"""Parsing, in the worker processes: links and records from a batch of pages (selectolax/lexbor).

Keep this module light and picklable-by-reference: the workers import it. The default record
functions here are also what the Scrapy spider of the benchmark calls, so both crawlers compute
records with the very same code.
"""

from __future__ import annotations

import heapq
import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from selectolax.lexbor import LexborHTMLParser

from ._config import Extractor
from ._encoding import decode_html, sniff_encoding
from ._frontier import Scope, normalize_url

__all__ = [
    "FetchedPage",
    "Page",
    "ParsedPage",
    "default_extract",
    "describe_error",
    "encode_record",
    "extract_links",
    "paragraph_text",
    "parse_batch",
    "top_words",
]

#: A word of ``top_words``: a run of ASCII letters in the lowercased text, 4 letters or more.
_WORD = re.compile(r"[a-z]{4,}")


@dataclass
class Page:
    """One fetched HTML page, as an extraction function sees it (in a worker process).

    ``body`` holds the bytes as received and ``content_type`` the HTTP ``Content-Type`` header
    (None when there was none). ``encoding`` is the page's character encoding, determined as the
    HTML standard has a browser do it (byte order mark, HTTP charset, ``<meta>``, default);
    ``text`` is the page decoded with it; ``tree`` is the page parsed by selectolax's lexbor
    parser from that text (parsed once, on first use); ``links`` are the distinct in-scope
    links of the page, resolved as a browser resolves them (WHATWG URL standard), in document
    order.
    """

    url: str
    status: int
    depth: int
    body: bytes
    links: list[str] = field(default_factory=list)
    content_type: str | None = None
    _tree: LexborHTMLParser | None = field(default=None, repr=False)
    _text: str | None = field(default=None, repr=False)

    @property
    def encoding(self) -> str:
        """The WHATWG name of the page's encoding, e.g. ``utf-8`` or ``windows-1252``."""
        return sniff_encoding(self.body, self.content_type)[0]

    @property
    def text(self) -> str:
        """The page's HTML decoded as a browser decodes it."""
        if self._text is None:
            self._text = decode_html(self.body, self.content_type)[1]
        return self._text

    @property
    def tree(self) -> LexborHTMLParser:
        if self._tree is None:
            encoding, skip = sniff_encoding(self.body, self.content_type)
            if encoding == "utf-8" and self._text is None:
                # lexbor reads UTF-8 bytes itself (bad bytes become U+FFFD, as in decoding).
                self._tree = LexborHTMLParser(self.body[skip:] if skip else self.body)
            else:
                self._tree = LexborHTMLParser(self.text)
        return self._tree


@dataclass
class ParsedPage:
    """What a worker sends back for one page: its links, and its record or why there is none.

    ``line`` is the record as one line of strict JSON (UTF-8, ending in a newline), encoded in
    the worker, so a record JSON cannot hold fails its own page there and never reaches the
    output. ``error`` is ``"<kind>: <detail>"``, kind ``parse`` (no links could be read) or
    ``extract`` (no record).
    """

    url: str
    links: list[str]
    line: bytes | None
    error: str | None = None
    links_dropped: int = 0  # <a href> elements not read: the page had max_links links before

    @property
    def record(self) -> dict[str, Any] | None:
        """The record, decoded from ``line`` (None when extraction failed)."""
        return None if self.line is None else json.loads(self.line)

    @property
    def error_kind(self) -> str:
        return (self.error or "").partition(": ")[0]

    @property
    def error_detail(self) -> str:
        return (self.error or "").partition(": ")[2]


#: The most of an exception's message kept in the statistics.
_DETAIL_CHARS = 300


def describe_error(exc: BaseException) -> str:
    """``Type: message`` of an exception, shortened, even when its ``__str__`` fails."""
    try:
        message = str(exc)
    except Exception:  # noqa: BLE001 - a user's exception class may break its own __str__
        message = "<unprintable>"
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return text if len(text) <= _DETAIL_CHARS else text[: _DETAIL_CHARS - 3] + "..."


def encode_record(record: object) -> bytes:
    """``record`` as one line of strict JSON, UTF-8, newline-terminated.

    Raises:
        TypeError: not a dict, or holds a value JSON has no type for (a set, bytes...).
        ValueError: NaN or infinity, a lone surrogate, a circular reference.
    """
    if not isinstance(record, dict):
        raise TypeError(f"returned {type(record).__name__}, expected a dict")
    try:
        text = json.dumps(record, ensure_ascii=False, allow_nan=False)
    except RecursionError:
        raise ValueError("the record is nested too deeply") from None
    # A lone surrogate ("\ud800") is in no encoding: UnicodeEncodeError, a ValueError.
    return (text + "\n").encode("utf-8")


def extract_links(
    tree: LexborHTMLParser, url: str, scope: Scope | None, limit: int | None = None
) -> list[str]:
    """Distinct normalised links of ``<a href>`` elements, in document order, in ``scope``.

    Relative links resolve against ``<base href>`` when the page has one, else ``url``. At most
    ``limit`` links: the ``<a href>`` elements after the one that reached it are not read.
    """
    return _links(tree, url, scope, limit)[0]


def _links(
    tree: LexborHTMLParser, url: str, scope: Scope | None, limit: int | None
) -> tuple[list[str], int]:
    """``extract_links`` and the number of ``<a href>`` elements left unread by ``limit``."""
    base = url
    base_node = tree.css_first("base[href]")
    if base_node is not None:
        base = normalize_url(base_node.attributes.get("href") or "", url) or url
    found: dict[str, None] = {}
    # href without its fragment -> link: pages repeat those (index pages thousands of times).
    resolved: dict[str, str | None] = {}
    nodes = tree.css("a[href]")
    for index, node in enumerate(nodes):
        if limit is not None and len(found) >= limit:
            return list(found), len(nodes) - index
        href = (node.attrs.get("href") or "").partition("#")[0]
        if href in resolved:
            continue
        link = resolved[href] = normalize_url(href, base)
        if link is not None and link not in found and (scope is None or link in scope):
            found[link] = None
    return list(found), 0


def paragraph_text(tree: LexborHTMLParser) -> str:
    """The text inside all ``<p>`` elements, one space between elements."""
    return " ".join(node.text(deep=True) for node in tree.css("p"))


def top_words(text: str, n: int = 10) -> list[list[str | int]]:
    """The ``n`` most frequent words of 4+ letters (``[a-z]{4,}`` on the lowercased text).

    As ``[word, count]`` pairs, most frequent first, ties broken alphabetically.
    """
    counts = Counter(_WORD.findall(text.lower()))
    if not counts or n <= 0:
        return []
    # Sorting every distinct word costs most of the parse: only words at least as frequent as
    # the n-th count can be in the answer, so sort just those.
    threshold = heapq.nlargest(n, counts.values())[-1]
    contenders = [(-count, word) for word, count in counts.items() if count >= threshold]
    contenders.sort()
    return [[word, -negative] for negative, word in contenders[:n]]


def default_extract(page: Page) -> dict[str, Any]:
    """The default record of a page: url, status, depth, title, words, top_words, links.

    ``title`` is the ``<title>`` text with runs of whitespace collapsed (None when missing);
    ``words`` counts the whitespace-separated words of ``paragraph_text``; ``links`` counts the
    distinct in-scope links.
    """
    title_node = page.tree.css_first("title")
    text = paragraph_text(page.tree)
    return {
        "url": page.url,
        "status": page.status,
        "depth": page.depth,
        "title": " ".join(title_node.text().split()) if title_node is not None else None,
        "words": len(text.split()),
        "top_words": top_words(text),
        "links": len(page.links),
    }


def parse_page(
    url: str,
    status: int,
    depth: int,
    body: bytes,
    content_type: str | None,
    scope: Scope | None,
    extract: Extractor | None,
    max_links: int | None = None,
) -> ParsedPage:
    """Links (at most ``max_links``) and record of one page; an exception of ``extract``, or a
    record JSON cannot hold, becomes ``error``."""
    page = Page(url, status, depth, body, content_type=content_type)
    try:
        page.links, dropped = _links(page.tree, url, scope, max_links)
    except Exception as exc:  # noqa: BLE001 - one odd page must not fail its whole batch
        return ParsedPage(url, [], None, f"parse: {describe_error(exc)}")
    try:
        record = (extract or default_extract)(page)
    # The user's code, reported per page. SystemExit too: a sys.exit() or an argparse error in
    # an extraction function is that page's error, not the end of the worker or of the crawl.
    except (Exception, SystemExit) as exc:  # noqa: BLE001
        return ParsedPage(url, page.links, None, f"extract: {describe_error(exc)}", dropped)
    try:
        line = encode_record(record)
    except (TypeError, ValueError) as exc:
        detail = f"the record cannot be written as JSON: {describe_error(exc)}"
        return ParsedPage(url, page.links, None, f"extract: {detail}", dropped)
    return ParsedPage(url, page.links, line, links_dropped=dropped)


def warm_up() -> int:
    """Nothing: called once per worker at the start of a crawl so that the worker processes
    start (and import this module) while the first pages are being fetched."""
    return 0


#: What a worker gets for one page: ``(url, status, depth, body, content_type)``.
FetchedPage = tuple[str, int, int, bytes, str | None]


def parse_batch(
    pages: Sequence[FetchedPage],
    scope: Scope | None,
    extract: Extractor | None,
    max_links: int | None = None,
) -> list[ParsedPage]:
    """Parse a batch of ``(url, status, depth, body, content_type)`` pages in one round trip."""
    return [parse_page(*page, scope, extract, max_links) for page in pages]

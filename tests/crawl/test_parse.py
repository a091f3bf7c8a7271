"""Records, links, URL normalisation and scope, computed the way the workers compute them."""

from __future__ import annotations

import pickle

import pytest

from hybridio.crawl import Page, Scope, default_extract, normalize_url, top_words
from hybridio.crawl._parse import FetchedPage, parse_batch

HTML = b"""<!doctype html><html><head><title>
  A   small\tpage </title><base href="http://site.test/docs/"></head><body>
<p>Alpha beta gamma delta. <b>Epsilon</b> zeta</p>
<div>not counted words here</div>
<p>Delta delta, gamma! ZETA zeta eta theta.
<a href="b.html">b</a> <a href="./b.html#x">b again</a> <a href="/c?q=1">c</a>
<a href="http://other.test/x">off site</a> <a href="mailto:x@site.test">mail</a>
<a href="HTTP://SITE.test:80/d">d</a></p>
"""


def test_default_record_fields() -> None:
    scope = Scope.for_seeds(["http://site.test/"])
    [parsed] = parse_batch([("http://site.test/docs/a.html", 200, 3, HTML, None)], scope, None)
    assert parsed.error is None
    assert parsed.links == [
        "http://site.test/docs/b.html",
        "http://site.test/c?q=1",
        "http://site.test/d",
    ]
    assert parsed.record == {
        "url": "http://site.test/docs/a.html",
        "status": 200,
        "depth": 3,
        "title": "A small page",
        # "Alpha beta gamma delta. Epsilon zeta" (6) + the second paragraph (15, link texts too)
        "words": 6 + 15,
        "top_words": [
            ["delta", 3],
            ["zeta", 3],
            ["gamma", 2],
            ["again", 1],
            ["alpha", 1],
            ["beta", 1],
            ["epsilon", 1],
            ["mail", 1],
            ["site", 1],
            ["theta", 1],
        ],
        "links": 3,
    }


def test_top_words_ties_alphabetical_and_limit() -> None:
    text = "bbbb aaaa cccc bbbb aaaa dddd Éclair éclat x yy zzz " + " ".join(
        f"w{chr(97 + i) * 4}" for i in range(12)
    )
    ranked = top_words(text)
    assert ranked[:2] == [["aaaa", 2], ["bbbb", 2]]
    assert len(ranked) == 10
    assert all(count == 1 for _, count in ranked[2:])
    assert [w for w, _ in ranked[2:]] == sorted(w for w, _ in ranked[2:])
    assert top_words("") == []


def test_malformed_and_binary_input_do_not_crash() -> None:
    for body in (b"\x00\xff\xfe<<<p>>", b"<p>open <b>bold <i>both</p></b>", b""):
        record = default_extract(Page("http://t.test/", 200, 0, body))
        assert isinstance(record["words"], int)


def test_extract_error_is_reported_per_page() -> None:
    pages: list[FetchedPage] = [
        ("http://t.test/1", 200, 0, b"<p>x</p>", None),
        ("http://t.test/2", 200, 0, b"<p>y</p>", "text/html"),
    ]
    results = parse_batch(pages, None, _raise_on_two)
    assert results[0].record == {"ok": 1}
    assert results[1].record is None
    assert results[1].error is not None
    assert "boom" in results[1].error


def _raise_on_two(page: Page) -> dict[str, int]:
    if page.url.endswith("2"):
        raise ValueError("boom")
    return {"ok": 1}


@pytest.mark.parametrize(
    ("href", "base", "expected"),
    [
        ("HTTP://Example.COM:80", None, "http://example.com/"),
        ("https://example.com:443/a/../b#frag", None, "https://example.com/b"),
        ("../x.html?b=2&a=1", "http://h.test/p/q/r.html", "http://h.test/p/x.html?b=2&a=1"),
        ("//cdn.test/y", "https://h.test/", "https://cdn.test/y"),
        ("#top", "http://h.test/", None),
        ("javascript:void(0)", "http://h.test/", None),
        ("ftp://h.test/file", None, None),
        ("http://[::1", None, None),
        # WHATWG, as browsers: a backslash is a slash, tabs and newlines vanish, spaces and
        # non-ASCII characters are percent-encoded as UTF-8, the host is lowercased.
        ("sub\\back.html", "http://h.test/d/", "http://h.test/d/sub/back.html"),
        ("\\\\other.test\\x", "http://h.test/", "http://other.test/x"),
        ("/caf\u00e9.html", "http://h.test/", "http://h.test/caf%C3%A9.html"),
        (" /a\tb\nc.html ", "http://h.test/", "http://h.test/abc.html"),
        ("/a b.html?q=x y", "http://h.test/", "http://h.test/a%20b.html?q=x%20y"),
        ("HTTP://EX\u00c4MPLE.test/", None, "http://xn--exmple-cua.test/"),
        ("http://h.test:8080/./a/./b/../c", None, "http://h.test:8080/a/c"),
    ],
)
def test_normalize_url(href: str, base: str | None, expected: str | None) -> None:
    assert normalize_url(href, base) == expected


def test_scope() -> None:
    scope = Scope.for_seeds(["http://127.0.0.1:8000/"])
    assert "http://127.0.0.1:8000/x" in scope
    assert "http://127.0.0.1:8001/x" not in scope
    assert "http://localhost:8000/x" not in scope
    wide = Scope.for_seeds(["http://a.test/"], ["example.org"])
    assert "https://docs.example.org:444/" in wide
    assert "http://badexample.org/" not in wide
    assert pickle.loads(pickle.dumps(scope)) == scope
    with pytest.raises(ValueError, match="absolute http"):
        Scope.for_seeds(["/relative"])


def test_links_past_the_limit_are_not_read() -> None:
    body = b"".join(b'<a href="/%d">x</a><a href="/%d">again</a>' % (i, i) for i in range(10))
    [parsed] = parse_batch([("http://t.test/", 200, 0, body, None)], None, None, 4)
    assert parsed.links == [f"http://t.test/{i}" for i in range(4)]
    assert parsed.links_dropped == 20 - 7  # the 4th distinct link is the 7th element

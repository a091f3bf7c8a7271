"""Encodings as the HTML standard has a browser determine them, and links read from the text."""

from __future__ import annotations

import pytest

from hybridio.crawl import Page, Scope
from hybridio.crawl._encoding import decode_html, prescan, sniff_encoding
from hybridio.crawl._parse import parse_batch

from . import extractors

SCOPE = Scope.for_seeds(["http://h.test/"])


def record(
    body: bytes, content_type: str | None = None, extract: object = None
) -> dict[str, object]:
    [parsed] = parse_batch([("http://h.test/q/a.html", 200, 1, body, content_type)], SCOPE, extract)  # type: ignore[arg-type]
    assert parsed.error is None, parsed.error
    assert parsed.record is not None
    return {**parsed.record, "link_list": parsed.links}


def test_latin1_meta_page_title_words_and_links() -> None:
    body = (
        "<html><head><meta charset=iso-8859-1><title>Café Müller</title></head>"
        "<body><p>Grüße aus München</p><a href='/café.html'>c</a></body></html>"
    ).encode("latin-1")
    got = record(body, "text/html")
    assert got["title"] == "Café Müller"
    assert got["words"] == 3
    # The link is read from the decoded text, then encoded as UTF-8, as a browser requests it.
    assert got["link_list"] == ["http://h.test/caf%C3%A9.html"]


def test_charset_only_in_the_http_header() -> None:
    body = "<title>Größe</title><p>Maße</p>".encode("latin-1")
    assert record(body, "text/html; charset=ISO-8859-1")["title"] == "Größe"
    # The header wins over a <meta> that says otherwise.
    meta = b"<meta charset=utf-8>" + body
    assert record(meta, 'text/html; charset="latin1"')["title"] == "Größe"


def test_windows_1252_smart_quotes() -> None:
    body = b'<meta http-equiv="Content-Type" content="text/html; charset=windows-1252">'
    body += b"<title>\x93Quoted\x94 \x96 dash</title>"
    assert record(body)["title"] == "\u201cQuoted\u201d \u2013 dash"
    # iso-8859-1 is windows-1252 in browsers (WHATWG Encoding Standard), so quotes survive.
    latin = b"<meta charset=ISO-8859-1><title>\x93x\x94</title>"
    assert record(latin)["title"] == "\u201cx\u201d"


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_with_bom(codec: str) -> None:
    html = "\ufeff<title>UTF-16 \u2713</title><p>one two three</p><a href='n\u00e4chste.html'>n</a>"
    got = record(html.encode(codec), "text/html; charset=iso-8859-1")  # the BOM wins
    assert got["title"] == "UTF-16 \u2713"
    assert got["words"] == 3
    assert got["link_list"] == ["http://h.test/q/n%C3%A4chste.html"]


def test_no_declaration_utf8_when_valid_else_windows_1252() -> None:
    assert sniff_encoding("<p>café</p>".encode()) == ("utf-8", 0)
    assert sniff_encoding("<p>café</p>".encode("latin-1")) == ("windows-1252", 0)
    assert sniff_encoding(b"\xef\xbb\xbf<p>x") == ("utf-8", 3)


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"<meta charset='koi8-r'>", "koi8-r"),
        (b'<META HTTP-EQUIV="content-type" CONTENT="text/html; charset=iso-8859-2">', "iso-8859-2"),
        # content=... without http-equiv=content-type is not a declaration.
        (b'<meta content="text/html; charset=iso-8859-2">', None),
        # Comments and other tags' attributes are skipped.
        (b"<!-- <meta charset=koi8-r> --><meta charset=utf-8>", "utf-8"),
        (b"<div title='<meta charset=koi8-r>'><meta charset=shift_jis>", "shift_jis"),
        # A UTF-16 declaration readable as ASCII means UTF-8; unknown labels are ignored.
        (b"<meta charset=utf-16>", "utf-8"),
        (b"<meta charset=no-such-thing>", None),
        # Only the first 1024 bytes are looked at.
        (b" " * 1024 + b"<meta charset=koi8-r>", None),
    ],
)
def test_meta_prescan(head: bytes, expected: str | None) -> None:
    assert prescan(head) == expected


def test_extract_function_sees_decoded_text() -> None:
    body = "<meta charset=windows-1252><title>Ölfeld</title><p>naïve</p>".encode("cp1252")
    page = Page("http://h.test/", 200, 0, body, content_type="text/html")
    assert page.encoding == "windows-1252"
    assert "naïve" in page.text
    got = record(body, "text/html", extractors.paragraphs)
    assert got["paragraphs"] == ["naïve"]


def test_decode_html_maps_undefined_windows_1252_bytes_like_a_browser() -> None:
    # 0x81 is undefined in Python's cp1252; WHATWG's windows-1252 maps it to U+0081.
    assert decode_html(b"<meta charset=latin1>\x81\x80")[1].endswith("\x81\u20ac")


def test_xhtml_uses_the_xml_declaration() -> None:
    body = "<?xml version='1.0' encoding='ISO-8859-1'?><html><title>Ça</title></html>"
    encoded = body.encode("latin-1")
    assert sniff_encoding(encoded, "application/xhtml+xml") == ("windows-1252", 0)
    assert record(encoded, "application/xhtml+xml")["title"] == "Ça"
    assert sniff_encoding(b"<html/>", "application/xhtml+xml") == ("utf-8", 0)

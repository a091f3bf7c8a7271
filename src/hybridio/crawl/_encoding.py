"""Which character encoding an HTML page is in, the way the HTML standard has a browser decide.

`Determining the character encoding`_ of the HTML standard, in its order:

1. a byte order mark (UTF-8, UTF-16LE, UTF-16BE) wins over everything;
2. else the ``charset`` of the HTTP ``Content-Type`` header, when it is a known label;
3. else a ``<meta charset>`` or ``<meta http-equiv=content-type content="...charset=...">`` in the
   first 1024 bytes, found by the standard's *prescan* (comments and other tags skipped);
4. else a default, which the standard leaves to the user agent: UTF-8 when the bytes are valid
   UTF-8 (what Chrome's detector concludes for such pages), windows-1252 otherwise (the default
   of browsers in most locales).

Labels are resolved with ``webencodings`` (the WHATWG Encoding Standard's table), so
``iso-8859-1``, ``latin1`` and ``ascii`` all mean windows-1252, as in a browser.

.. _Determining the character encoding:
   https://html.spec.whatwg.org/multipage/parsing.html#determining-the-character-encoding
"""

from __future__ import annotations

import codecs
import re

import webencodings

__all__ = ["decode_html", "http_charset", "prescan", "sniff_encoding"]

_BOMS = (
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xfe\xff", "utf-16be"),
    (b"\xff\xfe", "utf-16le"),
)
_PRESCAN_BYTES = 1024
_SPACE = b"\t\n\x0c\r "
_CHARSET_PARAM = re.compile(rb"charset", re.IGNORECASE)
_XML_DECLARATION = re.compile(rb"""<\?xml\s[^>]*?encoding\s*=\s*["']([A-Za-z0-9._:-]+)["']""")
_HEADER_CHARSET = re.compile(r"""charset\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s;]*))""", re.IGNORECASE)


def _lookup(label: str | bytes | None) -> str | None:
    """The WHATWG name of the encoding ``label`` names (e.g. ``windows-1252``), or None."""
    if label is None:
        return None
    if isinstance(label, bytes):
        label = label.decode("ascii", "replace")
    encoding = webencodings.lookup(label)
    if encoding is None or encoding.name == "replacement":
        return None
    return str(encoding.name)


def http_charset(content_type: str | None) -> str | None:
    """The encoding named by a ``Content-Type`` header's charset parameter, when it is known."""
    if not content_type:
        return None
    match = _HEADER_CHARSET.search(content_type)
    if match is None:
        return None
    return _lookup(next(group for group in match.groups() if group is not None))


def _charset_from_content(value: bytes) -> str | None:
    """The standard's "extracting a character encoding from a meta element" (a content value)."""
    position = 0
    while True:
        match = _CHARSET_PARAM.search(value, position)
        if match is None:
            return None
        position = match.end()
        while position < len(value) and value[position] in _SPACE:
            position += 1
        if position >= len(value) or value[position] != ord("="):
            continue  # "charset" not followed by "=": look for the next one
        position += 1
        while position < len(value) and value[position] in _SPACE:
            position += 1
        if position >= len(value):
            return None
        quote = value[position]
        if quote in b"\"'":
            end = value.find(bytes([quote]), position + 1)
            return None if end < 0 else _lookup(value[position + 1 : end])
        end = position
        while end < len(value) and value[end] not in _SPACE and value[end] != ord(";"):
            end += 1
        return _lookup(value[position:end])


class _Prescan:
    """The standard's "prescan a byte stream to determine its encoding", on the first 1024 bytes."""

    def __init__(self, data: bytes) -> None:
        self.data = data[:_PRESCAN_BYTES]
        self.position = 0

    def run(self) -> str | None:
        data = self.data
        while self.position < len(data):
            if data.startswith(b"<!--", self.position):
                end = data.find(b"-->", self.position + 2)  # "<!-->" is a complete comment
                if end < 0:
                    return None
                self.position = end + 3
            elif (
                data[self.position : self.position + 5].lower() == b"<meta"
                and self.position + 5 < len(data)
                and data[self.position + 5] in _SPACE + b"/"
            ):
                self.position += 6
                encoding = self._meta()
                if encoding is not None:
                    return encoding
            elif data.startswith(b"<", self.position) and self._is_tag_start():
                while self.position < len(data) and data[self.position] not in _SPACE + b">":
                    self.position += 1
                while self._attribute() is not None:
                    pass
            elif data[self.position : self.position + 2] in (b"<!", b"</", b"<?"):
                end = data.find(b">", self.position)
                if end < 0:
                    return None
                self.position = end + 1
            else:
                self.position += 1
        return None

    def _is_tag_start(self) -> bool:
        data, at = self.data, self.position + 1
        if data.startswith(b"/", at):
            at += 1
        return at < len(data) and chr(data[at]).isascii() and chr(data[at]).isalpha()

    def _meta(self) -> str | None:
        names: set[bytes] = set()
        got_pragma, need_pragma, charset = False, None, None
        while (attribute := self._attribute()) is not None:
            name, value = attribute
            if name in names:
                continue
            names.add(name)
            if name == b"http-equiv" and value == b"content-type":
                got_pragma = True
            elif name == b"content" and charset is None:
                charset = _charset_from_content(value)
                if charset is not None:
                    need_pragma = True
            elif name == b"charset":
                charset, need_pragma = _lookup(value), False
        if need_pragma is None or (need_pragma and not got_pragma) or charset is None:
            return None
        if charset in ("utf-16be", "utf-16le"):
            return "utf-8"  # a page that could declare itself in ASCII is not UTF-16
        return "windows-1252" if charset == "x-user-defined" else charset

    def _attribute(self) -> tuple[bytes, bytes] | None:
        """The standard's "get an attribute": (lowercased name, value), or None at the tag's end."""
        data, end = self.data, len(self.data)
        while self.position < end and data[self.position] in _SPACE + b"/":
            self.position += 1
        if self.position >= end or data[self.position] == ord(">"):
            return None
        name = bytearray()
        while True:
            if self.position >= end:
                return None
            byte = data[self.position]
            if byte == ord("=") and name:
                self.position += 1
                break
            if byte in _SPACE:
                while self.position < end and data[self.position] in _SPACE:
                    self.position += 1
                if self.position >= end or data[self.position] != ord("="):
                    return bytes(name).lower(), b""
                self.position += 1
                break
            if byte in b"/>":
                return bytes(name).lower(), b""
            name.append(byte)
            self.position += 1
        while self.position < end and data[self.position] in _SPACE:
            self.position += 1
        if self.position >= end:
            return None
        quote = data[self.position]
        if quote in b"\"'":
            close = data.find(bytes([quote]), self.position + 1)
            if close < 0:
                return None
            value = data[self.position + 1 : close]
            self.position = close + 1
            return bytes(name).lower(), value.lower()
        if quote == ord(">"):
            return bytes(name).lower(), b""
        start = self.position
        while self.position < end and data[self.position] not in _SPACE + b">":
            self.position += 1
        if self.position >= end:
            return None
        return bytes(name).lower(), data[start : self.position].lower()


def prescan(data: bytes) -> str | None:
    """The encoding a ``<meta>`` in the first 1024 bytes of ``data`` declares, or None."""
    return _Prescan(data).run()


def sniff_encoding(body: bytes, content_type: str | None = None) -> tuple[str, int]:
    """``(WHATWG encoding name, length of the byte order mark)`` of an HTML page.

    ``content_type`` is the HTTP ``Content-Type`` header, when there was one. An XHTML page
    (``application/xhtml+xml``) is XML: its ``<?xml encoding=...?>`` declaration takes the place
    of the ``<meta>`` prescan, and its default is UTF-8.
    """
    for bom, name in _BOMS:
        if body.startswith(bom):
            return name, len(bom)
    if content_type and content_type.split(";")[0].strip().lower() == "application/xhtml+xml":
        match = _XML_DECLARATION.match(body)
        declared = http_charset(content_type) or _lookup(match.group(1) if match else None)
        return declared or "utf-8", 0
    declared = http_charset(content_type) or prescan(body)
    if declared is not None:
        return declared, 0
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return "windows-1252", 0
    return "utf-8", 0


def _c1_controls(error: UnicodeError) -> tuple[str, int]:
    # The five bytes Python's cp1252 leaves undefined are C1 controls in WHATWG's windows-1252.
    assert isinstance(error, UnicodeDecodeError)
    return error.object[error.start : error.end].decode("latin-1"), error.end


codecs.register_error("hybridio-windows-1252", _c1_controls)


def decode_html(body: bytes, content_type: str | None = None) -> tuple[str, str]:
    """``(encoding, text)``: the page decoded as a browser would (bad bytes become U+FFFD)."""
    name, skip = sniff_encoding(body, content_type)
    codec = webencodings.lookup(name)
    assert codec is not None
    errors = "hybridio-windows-1252" if name == "windows-1252" else "replace"
    text: str = codec.codec_info.decode(body[skip:], errors)[0]
    return name, text

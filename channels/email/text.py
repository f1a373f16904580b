"""Turning message bodies into safe text: charsets, HTML, quoted replies and signatures."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import nh3

# Tags and attributes a staff page may show from a resident's HTML e-mail. Everything else,
# scripts, styles, event handlers and remote images included, is removed.
SAFE_TAGS = {
    "a",
    "b",
    "blockquote",
    "br",
    "div",
    "em",
    "i",
    "li",
    "ol",
    "p",
    "pre",
    "span",
    "strong",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "u",
    "ul",
    "h1",
    "h2",
    "h3",
    "h4",
}
SAFE_ATTRIBUTES = {"a": {"href", "title"}}
FALLBACK_CHARSETS = ("utf-8", "cp1252")


def decode_bytes(payload: bytes, declared: str | None) -> str:
    """Decode with the declared charset, falling back when it is wrong or unknown.

    Mail clients often declare us-ascii or iso-8859-1 and send UTF-8 or Windows-1252; a
    strict decode with the declared charset that fails means the declaration is wrong.
    """
    candidates = [declared] if declared else []
    candidates += [c for c in FALLBACK_CHARSETS if c != declared]
    for charset in candidates:
        try:
            return payload.decode(charset)
        except (LookupError, UnicodeDecodeError):
            continue
    return payload.decode("latin-1")  # never fails: every byte maps to a character


def sanitise_html(html: str) -> str:
    return nh3.clean(
        html,
        tags=SAFE_TAGS,
        attributes=SAFE_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


class _TextExtractor(HTMLParser):
    _BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "blockquote", "table"}
    _SKIP = {"script", "style", "head", "title"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skipping:
            self._skipping -= 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    extractor = _TextExtractor()
    try:
        extractor.feed(html)
        extractor.close()
    except Exception:  # noqa: S110 - malformed markup: keep whatever text was read
        pass
    text = "".join(extractor.parts)
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# Where the quoted previous message begins, in English and Welsh mail clients.
_QUOTE_HEADERS = [
    re.compile(r"^\s*On\b.{0,200}\bwrote:\s*$", re.IGNORECASE),
    re.compile(r"^\s*Ar\b.{0,200}\bysgrifennodd\b.*:\s*$", re.IGNORECASE),
    re.compile(r"^\s*-{2,}\s*Original Message\s*-{2,}", re.IGNORECASE),
    re.compile(r"^\s*_{10,}\s*$"),
    re.compile(r"^\s*From:\s.+$", re.IGNORECASE),
]
_SIGNATURE_STARTS = [
    re.compile(r"^-- ?$"),
    re.compile(r"^\s*Sent from my \w+", re.IGNORECASE),
    re.compile(r"^\s*Get Outlook for ", re.IGNORECASE),
]


# Lines that may start a signature or a quote, or be quoted (">"): a superset of what the
# patterns above match, found in one pass over the whole text. Every other line is kept
# as it is, so the per-line checks run only on these few. `[^\S\n]` is `\s` within a line.
_LINE_OF_INTEREST = re.compile(
    r"^[^\S\n]*(?:on\b|ar\b|-|_|from:|sent from my |get outlook for |>)",
    re.IGNORECASE | re.MULTILINE,
)
_STOP = 0
_KEEP = 1
_SKIP = 2


def _next_lines(text: str, end: int, count: int) -> list[str]:
    """Up to `count` lines after the line ending at `end` (-1: that line is the last)."""
    if end < 0:
        return []
    return text[end + 1 : _nth_newline(text, end + 1, count)].split("\n")[:count]


def _nth_newline(text: str, start: int, count: int) -> int:
    position = start - 1
    for _ in range(count):
        position = text.find("\n", position + 1)
        if position < 0:
            return len(text)
    return position


def _line_verdict(line: str, text: str, end: int) -> int:
    """Stop at, keep or skip one line of interest of `text`, which ends at `end`."""
    if any(p.match(line) for p in _SIGNATURE_STARTS):
        return _STOP
    if any(p.match(line) for p in _QUOTE_HEADERS):
        # "From:" only starts a quote when a Sent:/Date: line follows (Outlook style).
        if line.lstrip().lower().startswith("from:"):
            following = " ".join(_next_lines(text, end, 3)).lower()
            if "sent:" not in following and "date:" not in following:
                return _KEEP
        return _STOP
    # "On Tue, 3 Mar 2026, Jane wrote:" is often wrapped over two lines.
    if line.lstrip().lower().startswith(("on ", "ar ")):
        following = _next_lines(text, end, 1)
        if following and following[0].rstrip().endswith(("wrote:", "ysgrifennodd:")):
            return _STOP
    if line.lstrip().startswith(">"):
        return _SKIP
    return _KEEP


def trim_reply(text: str) -> str:
    """The new part of a reply: drops the quoted earlier message and the signature."""
    normalised = text.replace("\r\n", "\n")
    kept: list[str] = []
    position = 0  # start of the first line not yet kept or dropped
    for match in _LINE_OF_INTEREST.finditer(normalised):
        start = match.start()
        end = normalised.find("\n", start)
        line = normalised[start:] if end < 0 else normalised[start:end]
        verdict = _line_verdict(line, normalised, end)
        if verdict == _STOP:
            kept.append(normalised[position:start])
            position = -1
            break
        if verdict == _SKIP:
            kept.append(normalised[position:start])
            position = len(normalised) if end < 0 else end + 1
    if position >= 0:
        kept.append(normalised[position:])
    trimmed = "".join(kept).strip()
    return trimmed or text.strip()

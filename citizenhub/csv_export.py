"""CSV downloads for every export in the project: formula-safe cells, streamed, safe filenames.

A CSV opened in a spreadsheet is a program as much as a document: a cell starting with
`=`, `+`, `-` or `@` (or a tab or carriage return, which some spreadsheets skip before
looking for those) is evaluated as a formula. Anything a resident typed (a service name,
a ward code, a message subject) can reach an export, so every cell goes through
`escape_cell`, which follows OWASP's "CSV Injection" advice: prefix such cells with a single
quote (spreadsheets show the text, not a formula), quote every field and double any
double quotes (csv.QUOTE_ALL does both).

Decisions, so nobody has to rediscover them:
- Numbers are escaped like text. A negative number (-3) becomes '-3, a text cell. That is
  OWASP's rule applied without exceptions: one rule for every value is easier to trust than
  a type-based carve-out, and our reports count things, so they never hold negatives.
- The body starts with a UTF-8 byte order mark by default. Excel, which most council staff
  open CSVs with, reads a CSV without one as Windows-1252 and garbles Welsh place names
  (Ynys Môn, Tŷ Ddewi) and every curly quote; other spreadsheets and Python's "utf-8-sig"
  simply skip it. Pass `bom=False` for machine-to-machine feeds.
- Responses stream (StreamingHttpResponse over a generator), so a large export never sits in
  memory as one string. Build the rows before returning the response when they come from
  the database: the generator runs after the view has returned, outside its transaction.
- Lines end with CRLF (RFC 4180). Newlines inside a cell are kept, inside quotes.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from django.http import StreamingHttpResponse
from django.utils.cache import add_never_cache_headers
from django.utils.http import content_disposition_header

# OWASP, "CSV Injection": the characters that make a spreadsheet treat a cell as a formula.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
BYTE_ORDER_MARK = "\ufeff"
CONTENT_TYPE = "text/csv; charset=utf-8"
DEFAULT_FILENAME = "export.csv"
_UNSAFE_FILENAME_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")


def escape_cell(value: Any) -> str:
    """The text of one cell, with a quote in front if a spreadsheet would run it as a formula.

    None is an empty cell; booleans, numbers, dates and lazy translations use their str().
    """
    if value is None:
        return ""
    text = str(value)
    if text.startswith(FORMULA_PREFIXES):
        return "'" + text
    return text


def safe_filename(name: str, *, default: str = DEFAULT_FILENAME) -> str:
    """A download name that is plain ASCII letters, digits, dots, dashes and underscores.

    Accents are dropped rather than the letter (Tŷ → Ty), anything else becomes "-", and the
    name always ends in ".csv". No path separators, quotes or line breaks can reach the
    Content-Disposition header, so no header injection and no "../" in a saved file name.
    """
    ascii_name = unicodedata.normalize("NFKD", name or "").encode("ascii", "ignore").decode("ascii")
    cleaned = _UNSAFE_FILENAME_CHARACTERS.sub("-", ascii_name)
    if cleaned.lower().endswith(".csv"):
        cleaned = cleaned[: -len(".csv")]
    # "..", ".csv" and the like have no name left once the dots are gone.
    stem = cleaned.strip(".-_")[:96].rstrip(".-_")
    if not stem:
        return default
    return f"{stem}.csv"


class _Echo:
    """A file-like object whose write() hands back the line, for csv.writer to stream through."""

    def write(self, value: str) -> str:
        return value


def csv_lines(
    header: Sequence[Any], rows: Iterable[Sequence[Any]], *, bom: bool = True
) -> Iterator[str]:
    """The CSV text, one line (or the byte order mark) at a time, every cell escaped."""
    writer = csv.writer(_Echo(), quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    if bom:
        yield BYTE_ORDER_MARK
    yield writer.writerow([escape_cell(cell) for cell in header])
    for row in rows:
        yield writer.writerow([escape_cell(cell) for cell in row])


def csv_response(
    *,
    filename: str,
    header: Sequence[Any],
    rows: Iterable[Sequence[Any]],
    bom: bool = True,
) -> StreamingHttpResponse:
    """A streamed CSV download: `text/csv; charset=utf-8`, attachment with a safe file name.

    Exports can hold personal data, so the response tells browsers and proxies not to
    keep a copy.
    """
    response = StreamingHttpResponse(csv_lines(header, rows, bom=bom), content_type=CONTENT_TYPE)
    response["Content-Disposition"] = content_disposition_header(True, safe_filename(filename))
    add_never_cache_headers(response)
    return response

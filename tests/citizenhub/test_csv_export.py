"""The CSV export helper: formula-injection escaping, streaming, encoding, file names."""

import csv
import io

import pytest
from django.http import StreamingHttpResponse

from citizenhub.csv_export import (
    BYTE_ORDER_MARK,
    csv_lines,
    csv_response,
    escape_cell,
    safe_filename,
)


def parse(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.startswith(BYTE_ORDER_MARK)
    return list(csv.reader(io.StringIO(body.removeprefix(BYTE_ORDER_MARK), newline="")))


@pytest.mark.parametrize(
    "dangerous",
    [
        '=HYPERLINK("https://evil.example","Click")',
        "+441234567890",
        "-2+3+cmd|' /C calc'!A0",
        "@SUM(1+9)*cmd|' /C calc'!A0",
        "\t=1+1",
        "\r=1+1",
    ],
)
def test_each_formula_prefix_is_escaped_with_a_single_quote(dangerous):
    assert escape_cell(dangerous) == "'" + dangerous


@pytest.mark.parametrize(
    "harmless",
    ["Missed bin", "", "3", "a=b", "E05000001", "Tŷ Ddewi", "100%", "'already quoted"],
)
def test_ordinary_text_is_left_alone(harmless):
    assert escape_cell(harmless) == harmless


def test_numbers_are_escaped_by_their_text_like_anything_else():
    # The decision in csv_export's docstring: one rule, no type-based exception.
    assert escape_cell(-3) == "'-3"
    assert escape_cell(-2.5) == "'-2.5"
    assert escape_cell(3) == "3"
    assert escape_cell(85.5) == "85.5"
    assert escape_cell(0) == "0"


def test_none_is_an_empty_cell_and_other_values_use_their_text():
    assert escape_cell(None) == ""
    assert escape_cell(True) == "True"


def test_the_response_streams_utf8_csv_with_a_bom_as_an_attachment():
    response = csv_response(
        filename="contacts-by-week.csv", header=["Week", "Contacts"], rows=[["2026-W01", 3]]
    )

    assert isinstance(response, StreamingHttpResponse)
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="contacts-by-week.csv"'
    assert "no-store" in response["Cache-Control"]
    assert "private" in response["Cache-Control"]
    body = b"".join(response.streaming_content)
    assert body.startswith(b"\xef\xbb\xbf")
    assert body == b'\xef\xbb\xbf"Week","Contacts"\r\n"2026-W01","3"\r\n'


def test_every_cell_is_quoted_and_escaped_including_the_header():
    response = csv_response(
        filename="x.csv",
        header=["=Service", "Count"],
        rows=[['=HYPERLINK("http://evil.example")', -3], ["+44 ward", "@me"]],
    )

    assert parse(response) == [
        ["'=Service", "Count"],
        ['\'=HYPERLINK("http://evil.example")', "'-3"],
        ["'+44 ward", "'@me"],
    ]


def test_unicode_newlines_commas_and_quotes_survive_a_round_trip():
    rows = [
        ["Ynys Môn, Tŷ Ddewi", '“curly” and "straight" quotes'],
        ["first line\nsecond line", "ends with CRLF\r\n"],
        ["emoji 🙂", "Łódź"],
    ]
    response = csv_response(filename="x.csv", header=["a", "b"], rows=rows)

    assert parse(response) == [["a", "b"], *rows]


def test_a_newline_inside_a_cell_stays_inside_the_quotes():
    lines = list(csv_lines(["a"], [["one\ntwo"]], bom=False))

    assert lines == ['"a"\r\n', '"one\ntwo"\r\n']


def test_the_byte_order_mark_can_be_left_out():
    response = csv_response(filename="feed.csv", header=["a"], rows=[], bom=False)

    assert b"".join(response.streaming_content) == b'"a"\r\n'


def test_rows_are_read_lazily_while_streaming():
    consumed = []

    def rows():
        for number in range(3):
            consumed.append(number)
            yield [number]

    response = csv_response(filename="x.csv", header=["n"], rows=rows())
    assert consumed == []

    chunks = iter(response.streaming_content)
    next(chunks)  # the byte order mark
    next(chunks)  # the header
    next(chunks)
    assert consumed == [0]
    list(chunks)
    assert consumed == [0, 1, 2]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (
            "contacts-by-week-2026-01-01-to-2026-03-31.csv",
            "contacts-by-week-2026-01-01-to-2026-03-31.csv",
        ),
        ("report", "report.csv"),
        ("Report.CSV", "Report.csv"),
        ("../../etc/passwd", "etc-passwd.csv"),
        ("C:\\Windows\\win.ini", "C-Windows-win.ini.csv"),
        ('a"b\r\nSet-Cookie: x=1', "a-b-Set-Cookie-x-1.csv"),
        ("Tŷ Ddewi ward.csv", "Ty-Ddewi-ward.csv"),
        ("", "export.csv"),
        ("..", "export.csv"),
        (".csv", "export.csv"),
        ("日本語", "export.csv"),
    ],
)
def test_file_names_are_made_safe(given, expected):
    assert safe_filename(given) == expected


def test_long_file_names_are_cut_but_keep_their_extension():
    name = safe_filename("x" * 500 + ".csv")

    assert name.endswith(".csv")
    assert len(name) == 100


def test_the_header_carries_only_the_safe_name():
    response = csv_response(filename='evil"\r\nX-Injected: yes.csv', header=["a"], rows=[])

    assert response["Content-Disposition"] == 'attachment; filename="evil-X-Injected-yes.csv"'
    assert "X-Injected" not in response.headers or response.headers.get("X-Injected") is None

"""Report plumbing without ClickHouse: time ranges, number formats, Markdown and HTML layout."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from watchkeeper.reports.document import Chart, Document, Section, Table, duration, num, pct
from watchkeeper.reports.render import write_html, write_markdown
from watchkeeper.reports.timerange import parse_range, parse_time

NOW = datetime(2026, 11, 16, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("-7d", NOW - timedelta(days=7)),
        ("now-90m", NOW - timedelta(minutes=90)),
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01T06:30Z", datetime(2026, 11, 1, 6, 30, tzinfo=UTC)),
        ("2026-11-01T08:30+02:00", datetime(2026, 11, 1, 6, 30, tzinfo=UTC)),
    ],
)
def test_parse_time(text: str, expected: datetime) -> None:
    assert parse_time(text, NOW) == expected


def test_parse_range_defaults_and_errors() -> None:
    assert parse_range(None, None, NOW, timedelta(days=30)).start == NOW - timedelta(days=30)
    assert parse_range("-1d", "-2h", NOW, timedelta(days=7)).seconds == 22 * 3600
    with pytest.raises(ValueError, match="must be before"):
        parse_range("now", "-1d", NOW, timedelta(days=7))
    with pytest.raises(ValueError, match="not a time"):
        parse_time("yesterday", NOW)


def test_formats() -> None:
    assert pct(0.99912) == "99.912 %" and pct(math.nan) == "n/a"
    assert num(math.inf) == "never" and num(1234.5) == "1,234.50"
    assert duration(math.inf) == "never" and duration(0) == "now"
    assert duration(3 * 86400 + 3600) == "3.0 d" and duration(5400) == "1.5 h" and duration(600) == "10 min"


def test_markdown_and_html_carry_the_same_figures_and_png(tmp_path: Path) -> None:
    png = b"\x89PNG\r\n\x1a\nfake"
    doc = Document("T", "range", [Section("S", ["para <b>"], [Table(["a", "b|c"], [["1", "x|y"]])],
                                          [Chart("c1", "cap", png)])])
    files = write_markdown(doc, tmp_path / "r.md")
    md = (tmp_path / "r.md").read_text()
    assert "| a | b\\|c |" in md and "| 1 | x\\|y |" in md
    assert "![cap](r_charts/c1.png)" in md and (tmp_path / "r_charts" / "c1.png").read_bytes() == png
    assert len(files) == 2
    write_html(doc, tmp_path / "r.html")
    html = (tmp_path / "r.html").read_text()
    assert "para &lt;b&gt;" in html and "<td>x|y</td>" in html and "data:image/png;base64,iVBORw0KGgpmYWtl" in html


def test_parameters_are_bound_client_side_for_any_http_endpoint() -> None:
    from watchkeeper.reports.clickhouse_reader import inline_parameters

    sql, bound = inline_parameters(
        "SELECT 1 FROM t WHERE ts >= {start:DateTime64(3)} AND name IN {names:Array(String)} "
        "AND id = {id:UInt64} AND n NOT LIKE 'slo:%'",
        {"start": datetime(2026, 11, 9, 0, 0, 0, 123000, tzinfo=UTC), "names": ("a", "b'c"), "id": 2**64 - 1},
    )
    assert "{" not in sql and "'slo:%%'" in sql
    assert "fromUnixTimestamp64Milli(toInt64(%(start)s), 'UTC')" in sql and "CAST(%(names)s AS Array(String))" in sql
    assert bound == {"start": 1794182400123, "names": ["a", "b'c"], "id": 2**64 - 1}
    assert inline_parameters("SELECT 'x%'", None) == ("SELECT 'x%'", {})

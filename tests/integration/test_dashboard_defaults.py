"""Given window aggregates in chDB, expect the dashboard's series list to start with this host's CPU use,
and the chart to open on the part of the range that has data (or, with none in it, the newest data)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import clickhouse_connect

from watchkeeper.dashboard.queries import DEFAULT_SERIES, series_chart, series_list
from watchkeeper.sinks.clickhouse_schema import create_tables

# A multiple of 720 s: the unfitted chart's 72 s buckets then cut the data at the same places whatever the clock
# (with NOW unaligned, 600 s of data spanned 9 or 10 buckets: a fresh-clone CI run caught it).
NOW = datetime.fromtimestamp(int(datetime.now(UTC).timestamp()) // 720 * 720, UTC)


def _insert(client: object, sid: int, name: str, labels: dict[str, str], start: datetime, windows: int) -> None:
    rows = ", ".join(
        f"({sid}, '{name}', map({', '.join(repr(x) for kv in labels.items() for x in kv)}), "
        f"toDateTime64({(start + timedelta(seconds=10 * i)).timestamp()}, 3, 'UTC'), "
        f"toDateTime64({(start + timedelta(seconds=10 * (i + 1))).timestamp()}, 3, 'UTC'), 1, {i}, {i}, {i}, {i})"
        for i in range(windows))
    client.command(  # type: ignore[attr-defined]
        f"INSERT INTO aggregates (series_id, name, labels, start, end, count, sum, min, max, last) VALUES {rows}")


def test_default_series_and_the_chart_range_with_data(ch_dsn: str) -> None:
    client = clickhouse_connect.get_client(dsn=ch_dsn)
    create_tables(client)
    recent = NOW - timedelta(minutes=10)
    _insert(client, 1, "a_first_by_name", {"host": "me"}, recent, 60)
    _insert(client, 2, DEFAULT_SERIES, {"host": "other"}, recent, 60)
    _insert(client, 3, DEFAULT_SERIES, {"host": "me"}, recent, 60)
    _insert(client, 4, "old_series", {"host": "me"}, NOW - timedelta(hours=20), 30)

    ids = [s["id"] for s in series_list(client, NOW, host="me")]
    assert ids[:3] == [f"{3:016x}", f"{2:016x}", f"{1:016x}"]
    assert series_list(client, NOW, match="first", host="me")[0]["id"] == f"{1:016x}"

    # 10 minutes of data in a 6-hour range: the chart spans those 10 minutes, a point per window.
    chart = series_chart(client, 3, NOW - timedelta(hours=6), NOW, points=300)
    assert chart["from"] == int(recent.timestamp() * 1000) and chart["to"] == int(NOW.timestamp() * 1000)
    assert len(chart["points"]) == 60
    # Unfitted, the same request spreads the 60 windows over 6 hours (300 buckets of 72 s: 9 of them used).
    assert len(series_chart(client, 3, NOW - timedelta(hours=6), NOW, points=300, fit=False)["points"]) == 9
    # No data in the last hour: the hour that ends at the newest window.
    old = series_chart(client, 4, NOW - timedelta(hours=1), NOW, points=300)
    newest_end = NOW - timedelta(hours=20) + timedelta(seconds=300)
    assert old["to"] == int(newest_end.timestamp() * 1000) and len(old["points"]) == 30

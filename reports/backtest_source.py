"""What a backtest reads from ClickHouse: the stored samples of a range, in slices small enough for the
read-only endpoint's result limit, and the alert transitions recorded live in the same range.

Samples of the metrics the backtested rules record are left out: the replay computes them again (a
changed recording rule must feed the rules after it, not the values recorded live).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from clickhouse_connect.driver.client import Client

from watchkeeper.reports.clickhouse_reader import ReaderError, inline_parameters, query_rows
from watchkeeper.schemas.alerts import AlertEvent

ROWS_PER_SLICE = 400_000  # under the endpoint's 1,000,000-row result limit, with room for bursts
MIN_SLICE = 60.0
MAX_SLICE = 6 * 3600.0


def _dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


@dataclass
class StoredSeries:
    ids: list[int]
    names: list[str]
    labels: list[dict[str, str]]
    kinds: list[str]


_RANGE = "ts > {start:DateTime64(3)} AND ts <= {end:DateTime64(3)} AND name NOT IN {skip:Array(String)}"


def stored_series(client: Client, start: float, end: float, skip: Sequence[str]) -> StoredSeries:
    """Every series with a sample in (start, end], except the names in `skip`."""
    rows = rows_of(client, "series", f"SELECT series_id, any(name), any(labels), any(kind) FROM samples WHERE {_RANGE} "
                 "GROUP BY series_id", start, end, skip)
    return StoredSeries([int(r[0]) for r in rows], [str(r[1]) for r in rows], [dict(r[2]) for r in rows],
                        [str(r[3]) for r in rows])


def sample_count(client: Client, start: float, end: float, skip: Sequence[str]) -> int:
    rows = rows_of(client, "count", f"SELECT count() FROM samples WHERE {_RANGE}", start, end, skip)
    return int(rows[0][0]) if rows else 0


def slice_seconds(count: int, start: float, end: float) -> float:
    """Slice length so one slice is about ROWS_PER_SLICE rows at the range's mean rate."""
    if count <= 0:
        return MAX_SLICE
    rate = count / max(end - start, 1.0)
    return float(min(MAX_SLICE, max(MIN_SLICE, ROWS_PER_SLICE / rate)))


def sample_slices(client: Client, start: float, end: float, skip: Sequence[str],
                  seconds: float) -> Iterator[tuple[float, np.ndarray, np.ndarray, np.ndarray]]:
    """(slice end, series ids, ts, values) per slice of (start, end], ascending in time, then series id."""
    a = start
    while a < end:
        b = min(end, a + seconds)
        # Sorted here rather than by ClickHouse: numpy's sort of a slice costs a fraction of the query's
        sql, bound = inline_parameters(
            "SELECT series_id, toUnixTimestamp64Milli(ts) AS ms, value FROM samples "
            f"WHERE {_RANGE}", {"start": _dt(a), "end": _dt(b), "skip": list(skip)})
        try:
            table = client.query_arrow(sql, parameters=bound or None)
        except Exception as exc:
            raise ReaderError(
                f"backtest: reading samples {_dt(a):%Y-%m-%d %H:%M}..{_dt(b):%H:%M} failed: {exc}") from None
        sids = table.column("series_id").to_numpy().astype(np.uint64)
        ms = table.column("ms").to_numpy().astype(np.int64)
        order = np.lexsort((sids, ms))  # by time, then series (ORDER BY ts, series_id)
        ts = ms[order].astype(np.float64) / 1000.0
        values = table.column("value").to_numpy().astype(np.float64)[order]
        yield b, sids[order], ts, values
        a = b


AGGREGATE_ROWS = 200_000  # rows per read of the aggregates table (under the endpoint's result limit)
_FIELDS = ("count", "sum", "min", "max", "last", "increase", "p50", "p90", "p95", "p99")


def aggregate_slices(client: Client, start: float, end: float,
                     names: Sequence[str] | None) -> Iterator[list[dict[str, Any]]]:
    """The stored window aggregates with `end` in (start, end], of these metric names (None: all), as
    `wk.aggregates` messages decode (series id in hex, times in seconds), ascending by `end`, in slices."""
    rows = rows_of(client, "aggregates count", "SELECT count() FROM aggregates FINAL WHERE "
                   "`end` > {start:DateTime64(3)} AND `end` <= {end:DateTime64(3)}" + _names_filter(names),
                   start, end, names or [])
    total = int(rows[0][0]) if rows else 0
    seconds = MAX_SLICE if total <= 0 else float(min(MAX_SLICE, max(MIN_SLICE, AGGREGATE_ROWS * (end - start) / total)))
    cols = ", ".join(f"`{c}`" for c in _FIELDS)
    a = start
    while a < end:
        b = min(end, a + seconds)
        got = rows_of(client, "aggregates", "SELECT series_id, name, labels, toUnixTimestamp64Milli(`end`), "
                      f"{cols} FROM aggregates FINAL WHERE `end` > {{start:DateTime64(3)}} AND "
                      "`end` <= {end:DateTime64(3)}" + _names_filter(names) + " ORDER BY `end`, series_id",
                      a, b, names or [])
        yield [{"series_id": f"{int(r[0]):016x}", "name": str(r[1]), "labels": dict(r[2]), "end": r[3] / 1000.0,
                **dict(zip(_FIELDS, r[4:], strict=True))} for r in got]
        a = b


def _names_filter(names: Sequence[str] | None) -> str:
    return "" if names is None else " AND name IN {skip:Array(String)}"


def live_alerts(client: Client, start: float, end: float, rules: Sequence[str]) -> list[AlertEvent]:
    """Transitions of these rules recorded in the `alerts` table with event time in [start, end]."""
    rows = query_rows(client, (
        "SELECT fingerprint, rule, state, severity, labels, annotations, value, toUnixTimestamp64Milli(starts_at), "
        "toUnixTimestamp64Milli(ends_at), toUnixTimestamp64Milli(event_time), source FROM alerts FINAL "
        "WHERE event_time >= {start:DateTime64(3)} AND event_time <= {end:DateTime64(3)} "
        "AND rule IN {rules:Array(String)} ORDER BY event_time, fingerprint"),
        {"start": _dt(start), "end": _dt(end), "rules": list(rules)})
    return [AlertEvent(fingerprint=r[0], rule=r[1], state=r[2], severity=r[3], labels=dict(r[4]),
                       annotations=dict(r[5]), value=float(r[6]), starts_at=r[7] / 1000.0,
                       ends_at=None if r[8] is None else r[8] / 1000.0, event_time=r[9] / 1000.0, source=r[10])
            for r in rows]


def rows_of(client: Client, step: str, sql: str, start: float, end: float,
          skip: Sequence[str]) -> Sequence[Sequence[Any]]:
    try:
        return query_rows(client, sql, {"start": _dt(start), "end": _dt(end), "skip": list(skip)})
    except Exception as exc:
        raise ReaderError(f"backtest: query '{step}' failed: {exc}") from None

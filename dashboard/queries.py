"""The dashboard's ClickHouse queries, each returning plain JSON-ready data. All read `FINAL`.

Blocking clickhouse-connect calls; the web layer runs them in a thread, one at a time.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from clickhouse_connect.driver.client import Client

from watchkeeper.reports.clickhouse_reader import query_rows
from watchkeeper.reports.query_progress import QueryRunner
from watchkeeper.reports.slo_report import slo_figures
from watchkeeper.reports.timerange import TimeRange

# Latest state per fingerprint; on equal event times, resolved beats firing beats pending.
ACTIVE_ALERTS_SQL = """
SELECT fingerprint,
       argMax(rule, k) AS rule, argMax(state, k) AS st, argMax(severity, k) AS severity,
       argMax(labels, k) AS labels, argMax(annotations, k) AS annotations, argMax(value, k) AS value,
       argMax(starts_at, k) AS starts_at, max(event_time) AS updated, argMax(source, k) AS source
FROM (
    SELECT *, (event_time, multiIf(state = 'resolved', 2, state = 'firing', 1, 0)) AS k FROM alerts FINAL
)
GROUP BY fingerprint
HAVING st IN ('firing', 'pending')
ORDER BY st = 'firing' DESC, severity, starts_at
LIMIT 500
"""


def _ms(t: datetime) -> int:
    return int(t.replace(tzinfo=UTC).timestamp() * 1000) if t.tzinfo is None else int(t.timestamp() * 1000)


def active_alerts(client: Client, now: datetime) -> list[dict[str, Any]]:
    out = []
    for fp, rule, state, severity, labels, annots, value, starts_at, updated, source in query_rows(
        client, ACTIVE_ALERTS_SQL
    ):
        out.append(
            {
                "fingerprint": fp,
                "rule": rule,
                "state": state,
                "severity": severity,
                "labels": dict(labels),
                "annotations": dict(annots),
                "value": _num(value),
                "starts_at": _ms(starts_at),
                "updated": _ms(updated),
                "source": source,
                "age_seconds": max(0.0, (now - starts_at.replace(tzinfo=UTC)).total_seconds()),
            }
        )
    return out


def ingest_status(client: Client, now: datetime) -> dict[str, Any]:
    """Samples stored in the last five minutes and the age of the newest one (is data flowing?)."""
    # A replay must not inflate the rate, so the count reads FINAL; max and distinct are replay-proof already.
    recent = query_rows(
        client,
        "SELECT count() FROM samples FINAL WHERE ts >= {since:DateTime64(3)}",
        {"since": now - timedelta(minutes=5)},
    )[0][0]
    newest, series = query_rows(
        client,
        "SELECT max(ts), uniqExact(series_id) FROM samples WHERE ts >= {day:DateTime64(3)}",
        {"day": now - timedelta(days=1)},
    )[0]
    age = None
    if newest is not None and newest.year > 1970:
        age = max(0.0, (now - newest.replace(tzinfo=UTC)).total_seconds())
    newest_window = query_rows(
        client, "SELECT max(end) FROM aggregates WHERE end >= {day:DateTime64(3)}", {"day": now - timedelta(days=1)}
    )[0][0]
    window_age = None
    if newest_window is not None and newest_window.year > 1970:
        window_age = max(0.0, (now - newest_window.replace(tzinfo=UTC)).total_seconds())
    return {
        "samples_per_second": int(recent) / 300.0,
        "last_sample_age_seconds": age,
        "last_window_age_seconds": window_age,
        "series_last_day": int(series),
    }


def slo_table(client: Client, now: datetime) -> list[dict[str, Any]]:
    with QueryRunner(client, steps=2, quiet=True) as q:
        figures = slo_figures(q, TimeRange(now - timedelta(days=30), now))
    return [
        {
            "id": f.sloth_id,
            "service": f.service,
            "slo": f.slo,
            "objective": f.objective,
            "attainment": _num(f.attainment),
            "budget_remaining": _num(f.budget_remaining),
            "burn_1h": _num(f.burn["1h"]),
            "burn_6h": _num(f.burn["6h"]),
            "burn_now": _num(f.burn_now),
            "time_to_exhaustion_seconds": _num(f.time_to_exhaustion),
            "status": f.status,
        }
        for f in figures
    ]


DEFAULT_SERIES = "node_cpu_usage_percent"  # the chart opens on this host's CPU use, not on the first name


def series_list(client: Client, now: datetime, match: str = "", limit: int = 200,
                host: str = "") -> list[dict[str, Any]]:
    """Series with aggregates in the last day, optionally filtered by a substring of the name. The useful
    default comes first (the CPU use of `host`, then of any host), then the rest by name."""
    rows = query_rows(
        client,
        """
        SELECT series_id, any(name) AS n, any(labels) AS l FROM aggregates
        WHERE start >= {day:DateTime64(3)} AND positionCaseInsensitive(name, {m:String}) > 0
        GROUP BY series_id
        ORDER BY n != {pref:String}, l['host'] != {host:String}, n, series_id LIMIT {limit:UInt32}
        """,
        {"day": now - timedelta(days=1), "m": match, "limit": limit, "pref": DEFAULT_SERIES, "host": host},
    )
    return [{"id": f"{int(sid):016x}", "name": n, "labels": dict(labels)} for sid, n, labels in rows]


def series_chart(client: Client, sid: int, start: datetime, end: datetime, points: int = 240,
                 fit: bool = True) -> dict[str, Any]:
    """One series over [start, end) from the window aggregates, merged into at most `points` buckets.

    With `fit`, the range is cut to where the series has data (a host watched for ten minutes gets a
    ten-minute chart, not a 6-hour axis with a dot at its end), and a range with no data at all moves
    back to end at the series' newest window."""
    if fit:
        start, end = fitted_range(client, sid, start, end)
    step_ms = max(1000, int((end - start).total_seconds() * 1000 / max(points, 1)))
    meta = query_rows(
        client, "SELECT any(name), any(labels) FROM aggregates WHERE series_id = {sid:UInt64}", {"sid": sid}
    )
    rows = query_rows(
        client,
        """
        SELECT intDiv(toUnixTimestamp64Milli(start), {step:UInt64}) * {step:UInt64} AS b,
               sum(sum) / nullIf(sum(count), 0), min(min), max(max)
        FROM aggregates FINAL
        WHERE series_id = {sid:UInt64} AND start >= {start:DateTime64(3)} AND start < {end:DateTime64(3)}
        GROUP BY b ORDER BY b
        """,
        {"sid": sid, "start": start, "end": end, "step": step_ms},
    )
    name, labels = (meta[0][0], dict(meta[0][1])) if meta and meta[0][0] else ("", {})
    return {
        "id": f"{sid:016x}",
        "name": name,
        "labels": labels,
        "step_ms": step_ms,
        "from": _ms(start),
        "to": _ms(end),
        "points": [[int(b), _num(mean), _num(lo), _num(hi)] for b, mean, lo, hi in rows],
    }


def fitted_range(client: Client, sid: int, start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """[start, end) narrowed to the series' first window in it; or, with none in it, at most the same length
    ending at the series' newest window (unchanged when the series has no data at all)."""
    rows = query_rows(
        client,
        """
        SELECT minIf(start, start >= {start:DateTime64(3)} AND start < {end:DateTime64(3)}),
               countIf(start >= {start:DateTime64(3)} AND start < {end:DateTime64(3)}), max(end), count(), min(start)
        FROM aggregates WHERE series_id = {sid:UInt64}
        """,
        {"sid": sid, "start": start, "end": end},
    )
    if not rows or not rows[0][3]:
        return start, end
    first, inside, newest, _, oldest = rows[0]
    if inside:
        return max(start, _utc(first)), end
    newest = _utc(newest)
    return max(newest - (end - start), _utc(oldest)), newest


def _utc(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def self_metric_values(client: Client, now: datetime) -> dict[str, Any]:
    """Figures for `/metrics` that only ClickHouse knows: stored rows, firing alerts, notification outcomes."""
    stored = query_rows(
        client, "SELECT table, sum(rows) FROM system.parts WHERE active AND database = currentDatabase() GROUP BY table"
    )
    notes = query_rows(client, "SELECT receiver, status, count() FROM notifications FINAL GROUP BY receiver, status")
    return {
        "rows": {t: int(n) for t, n in stored},
        "notifications": [(r, s, int(n)) for r, s, n in notes],
        "alerts": active_alerts(client, now),
        "ingest": ingest_status(client, now),
    }


def _num(v: Any) -> float | None:
    """JSON has no NaN or infinity: those become null."""
    if v is None:
        return None
    f = float(v)
    return None if math.isnan(f) or math.isinf(f) else f

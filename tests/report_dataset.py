"""A deterministic dataset for the report tests: SLI recordings, trend metrics and disk usage, in numpy.

The tests load it into a chDB database through the same columnar inserts the sink uses, twice (a replay),
and compute every expected figure from these arrays with numpy, independently of ClickHouse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
from clickhouse_connect.driver.client import Client

from watchkeeper.schemas.series_id import series_id

END = datetime(2026, 11, 16, tzinfo=UTC)
START = END - timedelta(days=7)
@dataclass
class Series:
    name: str
    labels: dict[str, str]
    ts: np.ndarray  # epoch seconds, float64
    values: np.ndarray
    kind: str = "gauge"

    @property
    def id(self) -> int:
        return series_id(self.name, self.labels)


@dataclass
class AggSeries:
    """Window aggregates: `start` (epoch s), width, and per window count, sum, min, max, last."""

    name: str
    labels: dict[str, str]
    start: np.ndarray
    width: float
    count: np.ndarray
    sum: np.ndarray
    min: np.ndarray
    max: np.ndarray
    last: np.ndarray

    @property
    def id(self) -> int:
        return series_id(self.name, self.labels)


@dataclass
class Dataset:
    samples: list[Series] = field(default_factory=list)
    aggregates: list[AggSeries] = field(default_factory=list)

    def sample(self, name: str, **labels: str) -> Series:
        return next(s for s in self.samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def create_tables(client: Client) -> None:
    """The sink's own DDL, so the reports are tested against exactly the tables production writes."""
    from watchkeeper.sinks.clickhouse_schema import create_tables as create

    create(client, samples_ttl_days=3650)


SLOS = {
    # sloth_id: (service, slo, objective, baseline error ratio)
    "checkout-requests-availability": ("checkout", "requests-availability", 0.999, 0.0002),
    "search-requests-latency": ("search", "requests-latency", 0.99, 0.001),
}


def build() -> Dataset:
    rng = np.random.default_rng(20261116)
    ds = Dataset()
    end = END.timestamp()
    # SLI recordings every 60 s over the week (the rule engine's evaluation interval), plus 30 d of history
    # before it at a lower level so the period figures differ from the range figures.
    ts = np.arange(end - 30 * 86400, end, 60.0)
    for sid, (service, slo, objective, base) in SLOS.items():
        ratio = base * (1 + 0.5 * rng.standard_normal(ts.size)).clip(0)
        ratio[ts < START.timestamp()] *= 0.5
        if service == "checkout":
            incident = (ts >= end - 2 * 86400) & (ts < end - 2 * 86400 + 2 * 3600)
            ratio[incident] = 0.02
            ratio[ts >= end - 3600] = 0.005
        labels = {"sloth_id": sid, "sloth_service": service, "sloth_slo": slo}
        ds.samples.append(Series("slo:sli_error:ratio_rate5m", {**labels, "sloth_window": "5m"}, ts, ratio))
        meta_ts = ts[::5]
        ds.samples.append(Series("slo:objective:ratio", labels, meta_ts, np.full(meta_ts.size, objective)))
        ds.samples.append(Series("slo:time_period:days", labels, meta_ts, np.full(meta_ts.size, 30.0)))
    # Trend metrics: six weeks of 10-minute window aggregates of 10 s samples.
    width = 600.0
    starts = np.arange(end - 42 * 86400, end, width)
    days = (starts - end) / 86400
    trend_defs = [
        ("cpu_percent", {"host": "web-1"}, 40 + 0.2 * days),
        ("cpu_percent", {"host": "web-2"}, 35 + 0 * days),
        ("cpu_percent", {"host": "db-1"}, np.where(days >= -7, 70.0, 45.0)),
        ("http_requests_per_second", {"service": "checkout"}, 200 + 10 * np.sin(2 * np.pi * days)),
        ("http_requests_per_second", {"service": "search"}, np.where(days >= -7, 90.0, 150.0)),
    ]
    for name, labels, mean in trend_defs:
        ds.aggregates.append(_windows(rng, name, labels, starts, width, mean, noise=2.0))
    # Disk usage for the capacity report: a week, filling, flat and shrinking; in both tables.
    week = starts[starts >= START.timestamp()]
    wdays = (week - end) / 86400
    for host, level, slope in (("web-1", 72.0, 1.5), ("web-2", 50.0, 0.0), ("db-1", 60.0, -0.5)):
        agg = _windows(rng, "disk_used_percent", {"host": host, "mount": "/"}, week, width, level + slope * wdays, 0.4)
        ds.aggregates.append(agg)
        ds.samples.append(Series("disk_used_percent", agg.labels, week, agg.sum / agg.count))
    return ds


def _windows(rng: np.random.Generator, name: str, labels: dict[str, str], starts: np.ndarray, width: float,
             mean: np.ndarray, noise: float) -> AggSeries:
    count = np.full(starts.size, int(width // 10), dtype=np.uint64)
    m = mean + noise * rng.standard_normal(starts.size)
    spread = np.abs(noise * rng.standard_normal(starts.size)) + 0.1
    return AggSeries(name, labels, starts, width, count, m * count, m - spread, m + spread, m + spread / 2)


def load(client: Client, ds: Dataset, replays: int = 2) -> None:
    """Insert the dataset `replays` times: FINAL in every report query must make the copies invisible."""
    tables = []
    if ds.samples:
        tables.append(("samples", _samples_table(ds.samples)))
    if ds.aggregates:
        tables.append(("aggregates", _aggregates_table(ds.aggregates)))
    for _ in range(replays):
        for name, table in tables:
            client.insert_arrow(name, table)


def _labels_col(labels: list[dict[str, str]], sizes: list[int]) -> pa.Array:
    items = [list(lab.items()) for lab, n in zip(labels, sizes, strict=True) for _ in range(n)]
    return pa.array(items, pa.map_(pa.string(), pa.string()))


def _ms(ts: np.ndarray) -> pa.Array:
    return pa.array(np.round(ts * 1000).astype("int64"), pa.int64()).cast(pa.timestamp("ms", tz="UTC"))


def _samples_table(series: list[Series]) -> pa.Table:
    sizes = [s.ts.size for s in series]
    return pa.table({
        "series_id": pa.array(np.repeat(np.array([s.id for s in series], dtype=np.uint64), sizes), pa.uint64()),
        "name": pa.array(np.repeat([s.name for s in series], sizes).tolist(), pa.string()),
        "labels": _labels_col([s.labels for s in series], sizes),
        "kind": pa.array(np.repeat([s.kind for s in series], sizes).tolist(), pa.string()),
        "ts": _ms(np.concatenate([s.ts for s in series])),
        "value": pa.array(np.concatenate([s.values for s in series]), pa.float64()),
    })


def _aggregates_table(aggs: list[AggSeries]) -> pa.Table:
    sizes = [a.start.size for a in aggs]
    cat = np.concatenate
    start = cat([a.start for a in aggs])
    width = cat([np.full(a.start.size, a.width) for a in aggs])
    zeros = pa.array(np.zeros(start.size), pa.float64())
    return pa.table({
        "series_id": pa.array(np.repeat(np.array([a.id for a in aggs], dtype=np.uint64), sizes), pa.uint64()),
        "name": pa.array(np.repeat([a.name for a in aggs], sizes).tolist(), pa.string()),
        "labels": _labels_col([a.labels for a in aggs], sizes),
        "kind": pa.array(["gauge"] * start.size, pa.string()),
        "start": _ms(start),
        "end": _ms(start + width),
        "count": pa.array(cat([a.count for a in aggs]), pa.uint64()),
        "sum": pa.array(cat([a.sum for a in aggs]), pa.float64()),
        "min": pa.array(cat([a.min for a in aggs]), pa.float64()),
        "max": pa.array(cat([a.max for a in aggs]), pa.float64()),
        "last": pa.array(cat([a.last for a in aggs]), pa.float64()),
        "increase": zeros, "p50": zeros, "p90": zeros, "p95": zeros, "p99": zeros,
        "sketch": pa.array([""] * start.size, pa.string()),
    })

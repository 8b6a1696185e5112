"""ClickHouse tables. Codecs are chosen for time series (DoubleDelta for time, Gorilla for values, ZSTD).

Every table is a ReplacingMergeTree whose sorting key identifies a row, so replaying a topic replaces
rows instead of doubling them; report queries read with FINAL.
"""

from __future__ import annotations

TABLES: dict[str, str] = {
    "samples": """
CREATE TABLE IF NOT EXISTS samples (
  series_id UInt64, name LowCardinality(String), labels Map(LowCardinality(String), String),
  kind LowCardinality(String), ts DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
  value Float64 CODEC(Gorilla, ZSTD(1))
) ENGINE = ReplacingMergeTree ORDER BY (name, series_id, ts) PARTITION BY toYYYYMM(ts)
TTL toDateTime(ts) + INTERVAL {samples_ttl_days} DAY""",
    "aggregates": """
CREATE TABLE IF NOT EXISTS aggregates (
  series_id UInt64, name LowCardinality(String), labels Map(LowCardinality(String), String),
  kind LowCardinality(String),
  start DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)), end DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
  count UInt64 CODEC(T64, ZSTD(1)), sum Float64 CODEC(Gorilla, ZSTD(1)), min Float64 CODEC(Gorilla, ZSTD(1)),
  max Float64 CODEC(Gorilla, ZSTD(1)), last Float64 CODEC(Gorilla, ZSTD(1)),
  increase Float64 CODEC(Gorilla, ZSTD(1)),
  p50 Float64 CODEC(Gorilla, ZSTD(1)), p90 Float64 CODEC(Gorilla, ZSTD(1)), p95 Float64 CODEC(Gorilla, ZSTD(1)),
  p99 Float64 CODEC(Gorilla, ZSTD(1)), sketch String CODEC(ZSTD(3))
) ENGINE = ReplacingMergeTree ORDER BY (name, series_id, start) PARTITION BY toYYYYMM(start)""",
    "alerts": """
CREATE TABLE IF NOT EXISTS alerts (
  fingerprint String, rule LowCardinality(String), state LowCardinality(String),
  severity LowCardinality(String), labels Map(String, String), annotations Map(String, String),
  value Float64, starts_at DateTime64(3, 'UTC'), ends_at Nullable(DateTime64(3, 'UTC')),
  event_time DateTime64(3, 'UTC'), source LowCardinality(String)
) ENGINE = ReplacingMergeTree ORDER BY (fingerprint, event_time, state)""",
    "notifications": """
CREATE TABLE IF NOT EXISTS notifications (
  notification_id String, receiver LowCardinality(String), integration LowCardinality(String),
  group_key String, status LowCardinality(String), attempt UInt32, error String, latency_ms Float64,
  time DateTime64(3, 'UTC'), alerts Array(String), firing UInt32, resolved UInt32
) ENGINE = ReplacingMergeTree ORDER BY (receiver, group_key, notification_id, attempt, status)""",
}


def create_tables(client: object, samples_ttl_days: int = 30) -> None:
    """Create every table (idempotent). `client` is a clickhouse-connect client."""
    for ddl in TABLES.values():
        client.command(ddl.format(samples_ttl_days=samples_ttl_days))  # type: ignore[attr-defined]

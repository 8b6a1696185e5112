"""Watchkeeper's own metrics (prometheus-client), updated where things happen: the worker counts samples,
lag and window close latency, the sinks count rows and errors, the dashboard its requests.

`watchkeeper up` runs the worker, the sinks and the dashboard as separate processes, so an in-process
registry in the dashboard would never see the worker's counters. `up` therefore runs every child with
`PROMETHEUS_MULTIPROC_DIR` set (prometheus-client's multiprocess mode: each process writes its values to
memory-mapped files there) and the dashboard's `/metrics` reads all processes' files (`exposition()`).
Without the variable (a component run alone, tests) `exposition()` falls back to this process's `REGISTRY`.
Names follow Prometheus conventions: `_total` counters, base units.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
if os.environ.get(MULTIPROC_ENV):  # every process that imports this writes there: a missing one must not crash it
    Path(os.environ[MULTIPROC_ENV]).mkdir(parents=True, exist_ok=True)

REGISTRY = CollectorRegistry(auto_describe=True)

SAMPLES_CONSUMED = Counter(
    "watchkeeper_samples_consumed_total", "Samples read from the samples topic by the worker.", ["topic"],
    registry=REGISTRY,
)
# livesum: a worker sets 0 for partitions it no longer owns, so the sum over live workers is the owner's lag; the
# supervisor marks dead workers' files (mark_dead) so a crashed worker's last values do not linger.
CONSUMER_LAG = Gauge(
    "watchkeeper_consumer_lag_messages", "Messages behind the partition's high watermark.", ["topic", "partition"],
    registry=REGISTRY, multiprocess_mode="livesum",
)
WINDOW_LATENCY = Histogram(
    "watchkeeper_window_close_latency_seconds", "Wall time from a window's end to its aggregate being emitted.",
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300), registry=REGISTRY,
)
SAMPLES_REJECTED = Counter(
    "watchkeeper_samples_rejected_total",
    "Samples the worker's window step refused and dead-lettered, by reason (late, future, bad_timestamp, "
    "bad_value, series_limit, source_limit).", ["reason"], registry=REGISTRY,
)
DEADLETTERS = Counter(
    "watchkeeper_window_deadletters_total",
    "Dead letters the worker's window step wrote, by reason (invalid, internal_error, late, future, "
    "bad_timestamp, bad_value, series_limit).", ["reason"], registry=REGISTRY,
)
# The rules agent reads the same samples topic and refuses the same samples, but dead-letters nothing (the
# window agent does): without this, its `future` and `source_limit` counts were visible nowhere.
RULES_SAMPLES_REJECTED = Counter(
    "watchkeeper_rules_samples_rejected_total",
    "Samples the rules agent left out of rule evaluation, by reason (late, future, bad_timestamp, source_limit).",
    ["reason"], registry=REGISTRY,
)
# Bounded label set: only the FUTURE_SOURCES_SHOWN sources with the most `future` samples get a series.
FUTURE_SOURCES_SHOWN = 20
SOURCE_FUTURE_SAMPLES = Gauge(
    "watchkeeper_source_future_samples",
    "Samples refused as `future` (clock ahead), per source, for the sources with the most of them on this "
    "worker's partitions.", ["source"], registry=REGISTRY, multiprocess_mode="livesum",
)
SKEWED_SOURCES = Gauge(
    "watchkeeper_skewed_sources", "Sources on this worker's partitions with samples refused as `future`.",
    registry=REGISTRY, multiprocess_mode="livesum",
)
SERIES_HELD = Gauge(
    "watchkeeper_window_series", "Series held by the worker's window step (bounded by windows.max_series).",
    registry=REGISTRY, multiprocess_mode="livesum",
)
# Rule evaluations that failed (the rule's state is left as it was for that tick), per rule group; the last
# few per rule are on the dashboard (`plumbing.rule_failure_files`), as vmalert shows them.
RULE_EVAL_FAILURES = Counter(
    "watchkeeper_rule_evaluation_failures_total", "Rule evaluations that failed, per rule group.", ["group"],
    registry=REGISTRY,
)
SINK_ROWS = Counter("watchkeeper_sink_rows_total", "Rows written by a sink.", ["sink", "table"], registry=REGISTRY)
SINK_ERRORS = Counter("watchkeeper_sink_errors_total", "Failed sink writes (retried).", ["sink"], registry=REGISTRY)
NOTIFY_PRUNED = Counter(
    "watchkeeper_notify_pruned_rows_total",
    "Rows the notify sink deleted past notify.retention_seconds: finished outbox rows (table outbox) and "
    "notification-log entries (table nflog).", ["table"], registry=REGISTRY,
)
NOTIFY_STALE = Counter(
    "watchkeeper_notify_stale_events_total",
    "Alert events skipped by the notify sink because a newer (or the same) transition of the fingerprint was "
    "already applied (reason: older, duplicate); duplicates of a replay, not dead-lettered.",
    ["reason"], registry=REGISTRY,
)
NOTIFY_REFUSED = Counter(
    "watchkeeper_notify_outbox_refused_total",
    "Notifications refused because notify.outbox_max_pending were already waiting (dead-lettered).",
    ["receiver", "integration"], registry=REGISTRY,
)
NOTIFY_PENDING = Gauge(
    "watchkeeper_notify_outbox_pending", "Notifications waiting in the notify sink's outbox (new or retrying).",
    registry=REGISTRY, multiprocess_mode="livesum",
)
NOTIFICATION_ERRORS = Counter(
    "watchkeeper_notification_errors_total", "Failed notification delivery attempts.", ["receiver", "integration"],
    registry=REGISTRY,
)
# The push API's front door (docs/ingestion.md, "Ingestion" lists every reason).
INGEST_ACCEPTED = Counter(
    "watchkeeper_ingest_accepted_samples_total", "Samples the push API took (spooled for Kafka), by endpoint.",
    ["endpoint"], registry=REGISTRY,
)
INGEST_REJECTED = Counter(
    "watchkeeper_ingest_rejected_total", "Push API requests answered with a 4xx, by endpoint and reason.",
    ["endpoint", "reason"], registry=REGISTRY,
)
INGEST_DISCARDED = Counter(
    "watchkeeper_ingest_discarded_samples_total",
    "Samples left out of requests whose other samples were taken (remote_write refusals and staleness markers, "
    "non-finite values in the text format), by endpoint and reason.",
    ["endpoint", "reason"], registry=REGISTRY,
)
# How late the worker's 0.1 s loop-lag timer woke (`plumbing.loop_lag`): a block beyond the consumer session
# loses the worker its partitions.
EVENT_LOOP_LAG = Histogram(
    "watchkeeper_event_loop_lag_seconds", "How late a worker's periodic 0.1 s timer woke (the event loop was blocked).",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30), registry=REGISTRY,
)
HTTP_REQUESTS = Counter(
    "watchkeeper_dashboard_requests_total", "Dashboard HTTP requests.", ["path", "code"], registry=REGISTRY
)
HTTP_LATENCY = Histogram(
    "watchkeeper_dashboard_request_duration_seconds", "Dashboard request latency.", ["path"], registry=REGISTRY
)


def multiproc_dir() -> Path | None:
    """The multiprocess directory this process writes to and reads from, if multiprocess mode is on."""
    value = os.environ.get(MULTIPROC_ENV)
    return Path(value) if value else None


def prepare_multiproc_dir(path: Path) -> Path:
    """An empty directory for a new run's metric files (old files would add a previous run's counts)."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def mark_dead(pid: int, directory: Path) -> None:
    """Forget a dead process's live gauges (its counters and histograms keep counting, as they should)."""
    if directory.is_dir():
        multiprocess.mark_process_dead(pid, str(directory))


def exposition() -> bytes:
    """The text exposition of Watchkeeper's own metrics: every process's files in multiprocess mode, else
    this process's `REGISTRY`."""
    directory = multiproc_dir()
    if directory is None or not directory.is_dir():
        return generate_latest(REGISTRY)
    merged = CollectorRegistry(auto_describe=False)
    multiprocess.MultiProcessCollector(merged, path=str(directory))
    return generate_latest(merged)


def skewed_sources() -> list[tuple[str, float]]:
    """Sources whose samples the worker refused as `future` (clock ahead), most first: the values of
    `watchkeeper_source_future_samples` from every process's files (multiprocess mode) or this process."""
    directory = multiproc_dir()
    if directory is not None and directory.is_dir():
        registry = CollectorRegistry(auto_describe=False)
        multiprocess.MultiProcessCollector(registry, path=str(directory))
    else:
        registry = REGISTRY
    counts: dict[str, float] = {}
    for family in registry.collect():
        if family.name == "watchkeeper_source_future_samples":
            for sample in family.samples:
                source = sample.labels.get("source")
                if source is not None and sample.value > 0:
                    counts[source] = counts.get(source, 0.0) + sample.value
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))

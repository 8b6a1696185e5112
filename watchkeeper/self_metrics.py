"""Watchkeeper's own metrics, in one prometheus-client registry that any component in the process updates.

`watchkeeper up` runs agents, sinks and the dashboard in one process, so a counter incremented by the
ClickHouse sink shows on the dashboard's `/metrics`. Components that run alone expose nothing here (they
can serve `REGISTRY` themselves). Names follow Prometheus conventions: `_total` counters, base units.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

SAMPLES_CONSUMED = Counter(
    "watchkeeper_samples_consumed_total", "Samples read from the samples topic by the worker.", ["topic"],
    registry=REGISTRY,
)
CONSUMER_LAG = Gauge(
    "watchkeeper_consumer_lag_messages", "Messages behind the partition's high watermark.", ["topic", "partition"],
    registry=REGISTRY,
)
WINDOW_LATENCY = Histogram(
    "watchkeeper_window_close_latency_seconds", "Wall time from a window's end to its aggregate being emitted.",
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300), registry=REGISTRY,
)
SINK_ROWS = Counter("watchkeeper_sink_rows_total", "Rows written by a sink.", ["sink", "table"], registry=REGISTRY)
SINK_ERRORS = Counter("watchkeeper_sink_errors_total", "Failed sink writes (retried).", ["sink"], registry=REGISTRY)
NOTIFICATION_ERRORS = Counter(
    "watchkeeper_notification_errors_total", "Failed notification delivery attempts.", ["receiver", "integration"],
    registry=REGISTRY,
)
HTTP_REQUESTS = Counter(
    "watchkeeper_dashboard_requests_total", "Dashboard HTTP requests.", ["path", "code"], registry=REGISTRY
)
HTTP_LATENCY = Histogram(
    "watchkeeper_dashboard_request_duration_seconds", "Dashboard request latency.", ["path"], registry=REGISTRY
)

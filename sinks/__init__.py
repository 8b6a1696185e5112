"""Sinks: ClickHouse (time series, alerts, deliveries) and notification channels."""

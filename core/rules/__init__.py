"""Prometheus rule files on the stream: loader, templates, the event-time rule engine and promtool's
unit-test runner. Pure: time comes in as an argument."""

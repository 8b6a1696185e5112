"""Given aiokafka's reconnect errors repeating during an outage, expect one line per minute that says how
many were held back, and every other record untouched."""

from __future__ import annotations

import logging

import pytest

from watchkeeper.plumbing.log_filters import RepeatLimiter, limit_reconnect_errors


def _record(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("aiokafka", logging.ERROR, __file__, 1, msg, args, None)


def test_reconnect_errors_are_limited_and_counted() -> None:
    now = [0.0]
    limiter = RepeatLimiter(interval=60.0, clock=lambda: now[0])
    passed = []
    for i in range(250):  # two a second for 125 s
        now[0] = i * 0.5
        rec = _record('Unable connect to "%s:%s": %s', "127.0.0.1", 9092, "refused")
        if limiter.filter(rec):
            passed.append((now[0], rec.getMessage()))
    assert [t for t, _ in passed] == [0.0, 60.0, 120.0]
    assert passed[0][1] == 'Unable connect to "127.0.0.1:9092": refused'
    assert passed[1][1] == 'Unable connect to "127.0.0.1:9092": refused (119 more like this in the last 60 s)'
    assert passed[2][1].endswith("(119 more like this in the last 60 s)")


def test_other_records_pass() -> None:
    limiter = RepeatLimiter(interval=60.0, clock=lambda: 0.0)
    assert all(limiter.filter(_record("Topic %s not found", "x")) for _ in range(5))


def test_installed_once_on_the_outage_loggers(caplog: pytest.LogCaptureFixture) -> None:
    limit_reconnect_errors()
    limit_reconnect_errors()
    for name in ("aiokafka", "aiokafka.consumer.fetcher"):
        assert sum(isinstance(f, RepeatLimiter) for f in logging.getLogger(name).filters) == 1
    with caplog.at_level(logging.ERROR, logger="aiokafka"):
        for _ in range(10):
            logging.getLogger("aiokafka").error("Unable to update metadata from %s", [1])
    assert len([r for r in caplog.records if r.name == "aiokafka"]) == 1

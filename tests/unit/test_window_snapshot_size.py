"""A partition's window snapshot is one Kafka message: with many series it must still fit the producer's
`max_request_size` (4 MiB, agents/app.py). 25,000 series with open windows (200,000 series over 8
partitions, the churn soak of issue 17) made 5 MB and crashed the worker (MessageSizeTooLargeError); the
snapshot is compressed now, and one written before that still restores."""

from __future__ import annotations

import zlib

import orjson

from watchkeeper.agents.window_step import WindowLimits, WindowStep

NOW = 1_800_000_000.0
SERIES = 25_000
MAX_REQUEST = 4 * 1024 * 1024


def message(first: int, n: int, t: float) -> bytes:
    blocks = [{"name": "churn_value", "labels": {"series": f"{i}.0"}, "kind": "gauge", "ts": [t], "values": [1.0]}
              for i in range(first, first + n)]
    return orjson.dumps({"v": 1, "source": "h", "labels": {"host": "h"}, "series": blocks})


def filled() -> WindowStep:
    step = WindowStep("wk.samples", limits=WindowLimits(width=120.0))
    for off, first in enumerate(range(0, SERIES, 500)):
        step.process(0, off, b"h", message(first, 500, NOW - 30.0), NOW)
    return step


def test_a_snapshot_of_25k_open_series_fits_one_message_and_restores() -> None:
    step = filled()
    data = step.snapshot(0)
    assert len(data) < MAX_REQUEST // 4
    again = WindowStep("wk.samples", limits=WindowLimits(width=120.0))
    again.restore(0, data)
    assert again.engines[0].open_windows == SERIES
    assert again.snapshot(0) == data


def test_an_uncompressed_snapshot_from_before_still_restores() -> None:
    step = filled()
    raw = zlib.decompress(step.snapshot(0)[2:])  # what snapshot() wrote before compression: b"WK" framing
    assert step.snapshot(0)[:2] == b"WZ" and raw[:2] == b"WK"
    again = WindowStep("wk.samples", limits=WindowLimits(width=120.0))
    again.restore(0, raw)
    assert again.progress[0].offset == SERIES // 500 - 1
    assert again.snapshot(0) == step.snapshot(0)

"""The rules scaling bench (bench/rules/scaling.py) measures what it says: its messages are what the
producers send, the partitioned path it times gives the single store's alerts, and its process model
adds up the costs as documented."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.rules.scaling import max_rate, run
from bench.rules.workload import T0, points, scrape_messages, series_labels
from watchkeeper.schemas import SampleBatch, decode, encode


def test_scrape_messages_are_what_encode_makes_one_per_instance_and_scrape() -> None:
    series = series_labels(400)
    batch = points(series, T0, T0 + 30, np.random.default_rng(1))
    scrapes = list(scrape_messages(batch, series))
    assert [ts for ts, _ in scrapes] == [T0, T0 + 15]
    for ts, msgs in scrapes:
        assert len(msgs) == 2  # 400 series = 10 families x 20 jobs x 2 instances
        for key, raw in msgs:
            got = decode(raw, SampleBatch)
            assert encode(got) == raw
            assert got.source == key.decode()
            assert len(got.series) == 200 and {s.labels["instance"] for s in got.series} == {key.decode()}
            assert all(s.ts == [ts] for s in got.series)


def test_partitioned_path_gives_the_single_stores_alert_transitions() -> None:
    result = run(4000, 100, 2, 60.0, 600.0, 8, "prometheus3", {"single", "partitioned"})
    part = result["partitioned"]
    assert result["single"]["alert_transitions"] > 0
    assert part["same_alert_transitions_as_single_store"] is True
    assert part["alert_transitions"] == result["single"]["alert_transitions"]
    assert part["recorded_messages"] == result["single"]["recorded_messages"]


def test_max_rate_is_bound_by_the_busiest_process_or_the_cores() -> None:
    # one process: everything in it
    assert max_rate(1000.0, 0.4, 0.1, 0.0, 1, 2, 8) == pytest.approx(1000.0 / 0.5)
    # two on two cores: the busiest holds half the partial work and every unit's merge
    assert max_rate(1000.0, 0.4, 0.1, 0.0, 2, 2, 8) == pytest.approx(1000.0 / 0.3)
    # ... or half of the units' (at least the largest unit's)
    assert max_rate(1000.0, 0.4, 0.1, 0.0, 2, 2, 8, busiest_merge=0.05) == pytest.approx(1000.0 / 0.25)
    # four on two cores: all of them together, each reading the whole partials topic, share two cores
    assert max_rate(1000.0, 0.4, 0.1, 0.01, 4, 2, 8) == pytest.approx(1000.0 / ((0.4 + 0.1 + 4 * 0.01) / 2))
    # partitions are not split: 16 processes over 8 partitions do the partial work of 8
    assert max_rate(1000.0, 0.8, 0.0, 0.0, 16, 16, 8) == pytest.approx(1000.0 / 0.1)
    assert math.isfinite(max_rate(1.0, 1.0, 0.0, 0.0, 1, 1, 1))

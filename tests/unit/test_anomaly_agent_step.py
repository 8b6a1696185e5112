"""The anomaly agent's step without Kafka: window aggregates and sample batches in, alert events and
checkpointable states out; bad messages are counted, never fatal; a series' points are scored per batch."""

from __future__ import annotations

import numpy as np
import orjson

from agents.anomaly_step import AnomalyStep, marker_key
from core.anomaly_rules import load_anomaly_text
from core.anomaly_scoring import AnomalyScorer
from schemas import AlertEvent, SampleBatch, SeriesBlock, WindowAggregate, decode, encode, format_series_id, series_id
from schemas.aggregates import SketchBins

T0, STEP = 1_700_000_000.0, 10.0
N, SHIFT = 2600, 2000

RULES = """anomaly:
  - name: api
    rules:
      - alert: LatencyShift
        selector: 'latency{job="api"}'
        input: aggregates
        field: p95
        threshold: 0.999
        detector: calibrated   # a calibrated rarity: 0.999 = 1 in 1,000 points
        for: 1m
      - alert: CpuShift
        selector: 'cpu{host=~"a|b"}'
        input: samples
        threshold: 0.999
        detector: calibrated   # a calibrated rarity: 0.999 = 1 in 1,000 points
        for: 1m
"""


def level_shift(seed: int = 0) -> np.ndarray:
    x = 100 + np.random.default_rng(seed).normal(0, 2, N)
    x[SHIFT:] += 30
    return x


def aggregate(labels: dict[str, str], i: int, p95: float, name: str = "latency") -> bytes:
    return encode(WindowAggregate(
        series_id=format_series_id(series_id(name, labels)), name=name, labels=labels, start=T0 + STEP * (i - 1),
        end=T0 + STEP * i, count=10, sum=900.0, min=80.0, max=p95 + 1, last=90.0, p50=90.0, p90=p95 - 1,
        p95=p95, p99=p95 + 1, sketch=SketchBins()))


def states(events: list[AlertEvent]) -> list[tuple[str, int]]:
    return [(e.state, round((e.event_time - T0) / STEP)) for e in events]


def step() -> AnomalyStep:
    return AnomalyStep([r for g in load_anomaly_text(RULES) for r in g.rules])


def test_aggregates_in_batches_give_the_detectors_own_transitions() -> None:
    x = level_shift()
    s = step()
    labels = {"job": "api", "instance": "web-1"}
    events: list[AlertEvent] = []
    for start in range(0, N, 500):  # batches of 500 messages, one window each
        for i in range(start, min(N, start + 500)):
            s.add_aggregate(3, aggregate(labels, i, float(x[i])))
            s.add_aggregate(3, aggregate({"job": "web"}, i, float(x[i])))  # not selected
        out = s.flush()
        events += [decode(v, AlertEvent) for _, v in out.records]
        cp = s.checkpoint()
        assert list(cp.states) == [3] and len(cp.states[3]) == 1  # one state, on the input's partition
    assert states(events) == [("pending", SHIFT), ("firing", SHIFT + 6), ("resolved", SHIFT + 48)]
    assert events[0].labels == {"job": "api", "instance": "web-1", "alertname": "LatencyShift"}
    assert s.points == N and s.bad == 0


def test_samples_score_every_selected_series_on_its_own() -> None:
    xa, xb = level_shift(0), 100 + np.random.default_rng(9).normal(0, 2, N)
    s = step()
    events: list[AlertEvent] = []
    for start in range(0, N, 100):  # one batch message per source per 100 points
        for host, x in (("a", xa), ("b", xb), ("c", xa)):
            ts = (T0 + STEP * np.arange(start, start + 100)).tolist()
            batch = SampleBatch(source=host, labels={"host": host},
                                series=[SeriesBlock(name="cpu", ts=ts, values=x[start:start + 100].tolist())])
            s.add_samples(0, host.encode(), encode(batch))
        out = s.flush()
        events += [decode(v, AlertEvent) for _, v in out.records]
    ts = T0 + STEP * np.arange(N)
    for host, x in (("a", xa), ("b", xb)):
        alone = AnomalyScorer().score(s.rules[1], "x", {"host": host}, ts, x).events
        assert states([e for e in events if e.labels["host"] == host]) == states(alone)
    assert states([e for e in events if e.labels["host"] == "a"])[:2] == [("pending", SHIFT), ("firing", SHIFT + 6)]
    assert {e.labels["host"] for e in events} <= {"a", "b"}
    assert s.points == 2 * N  # hosts a and b; c is not selected


def test_bad_messages_are_counted_and_the_rest_is_scored() -> None:
    s = step()
    labels = {"job": "api"}
    s.add_aggregate(0, b"not json")
    s.add_aggregate(0, b'{"v": 1, "series_id": "xyz"}')
    s.add_samples(0, b"a", b'{"v": 1, "source": "a", "series": [{"name": "cpu", "ts": [1], "values": []}]}')
    s.add_aggregate(0, aggregate(labels, 1, 100.0))
    out = s.flush()
    assert s.bad == 3 and out.applied == 1


def test_states_load_from_the_table_and_revoked_partitions_are_forgotten() -> None:
    x = level_shift()
    table: dict[bytes, bytes] = {}
    rules = [r for g in load_anomaly_text(RULES) for r in g.rules]
    first = AnomalyStep(rules, load=table.get)
    labels = {"job": "api"}
    for i in range(SHIFT + 3):
        first.add_aggregate(5, aggregate(labels, i, float(x[i])))
    out = first.flush()
    table.update(first.checkpoint().states[5])
    first.forget({5})
    assert not first.scorer.states
    second = AnomalyStep(rules, load=table.get)  # the partition's next owner
    for i in range(SHIFT - 10, N):  # it is given the last 13 scored windows again
        second.add_aggregate(5, aggregate(labels, i, float(x[i])))
    again = second.flush()
    events = [decode(v, AlertEvent) for _, v in out.records + again.records]
    assert states(events) == [("pending", SHIFT), ("firing", SHIFT + 6), ("resolved", SHIFT + 48)]
    assert second.skipped == 13


def test_a_resumed_partition_starts_from_its_marker_not_from_where_faust_resumes_it() -> None:
    x = level_shift()
    table: dict[bytes, bytes] = {}
    rules = [r for g in load_anomaly_text(RULES) for r in g.rules]
    labels = {"job": "api"}
    first = AnomalyStep(rules, load=table.get)
    first.resume(1, None)
    for i in range(100):
        first.add("aggregates", "wk.aggregates", 1, i, None, aggregate(labels, i, float(x[i])))
    first.flush()
    cp = first.checkpoint()
    table.update(cp.states[1])
    table[marker_key(1)] = cp.markers[1]
    assert orjson.loads(cp.markers[1]) == {"wk.aggregates": 99}
    assert not first.checkpoint()  # nothing changed since
    second = AnomalyStep(rules, load=table.get)
    second.resume(1, table[marker_key(1)])
    assert second.gap("wk.aggregates", 1, 130) == (100, 130)  # Faust resumed past the checkpoint
    assert second.gap("wk.aggregates", 1, 100) is None
    assert second.gap("wk.samples", 1, 7) == (0, 7)  # never checkpointed: from the beginning
    second.add("aggregates", "wk.aggregates", 1, 99, None, aggregate(labels, 99, float(x[99])))  # applied
    second.add("aggregates", "wk.aggregates", 1, 100, None, b"not json")
    second.flush()
    assert second.messages == 1 and second.bad == 1 and second.applied[1] == {"wk.aggregates": 100}
    second.forget({1})
    assert not second.resumed(1)
    second.add("aggregates", "wk.aggregates", 1, 101, None, aggregate(labels, 101, float(x[101])))
    assert second.messages == 1 and not second.resumed(1)  # revoked: a buffered event is ignored
    second.assigned({1})
    second.resume(1, table[marker_key(1)])
    second.add("aggregates", "wk.aggregates", 1, 100, None, aggregate(labels, 100, float(x[100])))
    assert second.messages == 2 and second.flush().applied == 1


def test_a_partition_being_released_takes_no_new_input_and_keeps_its_state_until_forgotten() -> None:
    """Revoked while a batch is under way: its further events are ignored, but what it already applied
    stays (the batch's checkpoint still covers it) until the agent forgets it after the batch ended."""
    x = level_shift()
    rules = [r for g in load_anomaly_text(RULES) for r in g.rules]
    labels = {"job": "api"}
    step = AnomalyStep(rules, load={}.get)
    step.resume(2, None)
    step.add("aggregates", "wk.aggregates", 2, 0, None, aggregate(labels, 0, float(x[0])))
    step.revoke({2})
    assert step.taken_away(2) and not step.resumed(2)
    step.add("aggregates", "wk.aggregates", 2, 1, None, aggregate(labels, 1, float(x[1])))
    assert step.messages == 1 and step.applied[2] == {"wk.aggregates": 0}
    assert step.flush().applied == 1 and orjson.loads(step.checkpoint().markers[2]) == {"wk.aggregates": 0}
    step.forget({2})
    assert step.taken_away(2) and 2 not in step.applied
    step.assigned({2})
    assert not step.taken_away(2)

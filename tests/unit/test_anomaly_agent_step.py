"""The anomaly agent's step without Kafka (the runtime's `PartitionStep`): window aggregates and sample
batches in, alert events and a per-partition checkpoint out; bad messages are counted, never fatal; a
series' points are scored per batch, and however the input is cut into batches the same events come out
in the same order (what the exactly-once rule needs)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from watchkeeper.agents.anomaly_step import AnomalyStep
from watchkeeper.core.anomaly_rules import load_anomaly_text
from watchkeeper.core.anomaly_scoring import AnomalyScorer
from watchkeeper.runtime.checkpoint import Checkpoint
from watchkeeper.schemas import (
    AlertEvent,
    SampleBatch,
    SeriesBlock,
    WindowAggregate,
    decode,
    encode,
    format_series_id,
    series_id,
)
from watchkeeper.schemas.aggregates import SketchBins

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


RULE_LIST = [r for g in load_anomaly_text(RULES) for r in g.rules]


def step(kind: str = "aggregates") -> AnomalyStep:
    return AnomalyStep(RULE_LIST, kind)


Rec = tuple[int, bytes | None, bytes, float]


def records(messages: Sequence[bytes], first: int = 0, key: bytes | None = None) -> list[Rec]:
    return [(first + i, key, m, 0.0) for i, m in enumerate(messages)]


def run(s: AnomalyStep, partition: int, recs: Sequence[tuple[int, bytes | None, bytes, float]],
        cut: int) -> list[tuple[int, bytes]]:
    """The records in batches of `cut`: (sequence number, alert event bytes) of everything made."""
    out = []
    for a in range(0, len(recs), cut):
        got = s.process_records(partition, recs[a:a + cut], 0.0)
        out += [(got.first_seq + i, v) for i, (_, v) in enumerate(got.records)]
    return out


def test_aggregates_in_batches_give_the_detectors_own_transitions() -> None:
    x = level_shift()
    s = step()
    labels = {"job": "api", "instance": "web-1"}
    msgs = [m for i in range(N) for m in (aggregate(labels, i, float(x[i])),
                                          aggregate({"job": "web"}, i, float(x[i])))]  # the second not selected
    made = run(s, 3, records(msgs), 1000)
    events = [decode(v, AlertEvent) for _, v in made]
    assert states(events) == [("pending", SHIFT), ("firing", SHIFT + 6), ("resolved", SHIFT + 48)]
    assert [n for n, _ in made] == [1, 2, 3]  # numbered in the partition's output sequence
    assert events[0].labels == {"job": "api", "instance": "web-1", "alertname": "LatencyShift"}
    assert s.points == N and s.bad == 0
    cp = Checkpoint.decode(s.snapshot(3))
    assert (cp.offset, cp.seq, len(cp.states)) == (2 * N - 1, 3, 1)  # one state: one selected series


def test_only_the_rules_of_the_steps_input_are_run() -> None:
    assert [r.alert for r in step("aggregates").rules] == ["LatencyShift"]
    assert [r.alert for r in step("samples").rules] == ["CpuShift"]
    with pytest.raises(ValueError, match="anomaly input kind 'windows'"):
        AnomalyStep(RULE_LIST, "windows")


def sample_messages() -> list[tuple[int, bytes | None, bytes, float]]:
    xa, xb = level_shift(0), 100 + np.random.default_rng(9).normal(0, 2, N)
    recs: list[tuple[int, bytes | None, bytes, float]] = []
    for start in range(0, N, 100):  # one batch message per source per 100 points
        for host, x in (("a", xa), ("b", xb), ("c", xa)):
            ts = (T0 + STEP * np.arange(start, start + 100)).tolist()
            batch = SampleBatch(source=host, labels={"host": host},
                                series=[SeriesBlock(name="cpu", ts=ts, values=x[start:start + 100].tolist())])
            recs.append((len(recs), host.encode(), encode(batch), 0.0))
    return recs


def test_samples_score_every_selected_series_on_its_own() -> None:
    xa, xb = level_shift(0), 100 + np.random.default_rng(9).normal(0, 2, N)
    s = step("samples")
    events = [decode(v, AlertEvent) for _, v in run(s, 0, sample_messages(), 3)]
    ts = T0 + STEP * np.arange(N)
    for host, x in (("a", xa), ("b", xb)):
        alone = AnomalyScorer().score(s.rules[0], "x", {"host": host}, ts, x).events
        assert states([e for e in events if e.labels["host"] == host]) == states(alone)
    assert states([e for e in events if e.labels["host"] == "a"])[:2] == [("pending", SHIFT), ("firing", SHIFT + 6)]
    assert {e.labels["host"] for e in events} <= {"a", "b"}
    assert s.points == 2 * N  # hosts a and b; c is not selected


@pytest.mark.parametrize("cut", [1, 7, 100, 10_000])
def test_the_same_input_makes_the_same_events_in_the_same_order_however_it_is_batched(cut: int) -> None:
    """A replay after a restart cuts the input differently from the live run: the events and their
    sequence numbers must not change, or the exactly-once rule would skip the wrong ones."""
    recs = sample_messages()
    assert run(step("samples"), 0, recs, cut) == run(step("samples"), 0, recs, 3)


def test_bad_messages_are_counted_and_the_rest_is_scored() -> None:
    aggregates, samples = step("aggregates"), step("samples")
    out = aggregates.process_records(0, records([b"not json", b'{"v": 1, "series_id": "xyz"}',
                                                 aggregate({"job": "api"}, 1, 100.0)]), 0.0)
    assert aggregates.bad == 2 and out.applied == 1 and aggregates.progress[0].offset == 2
    samples.process_records(0, records(
        [b'{"v": 1, "source": "a", "series": [{"name": "cpu", "ts": [1], "values": []}]}'], key=b"a"), 0.0)
    assert samples.bad == 1 and samples.progress[0].offset == 0


def test_a_restored_partition_goes_on_from_its_checkpoint_and_skips_what_it_holds() -> None:
    """Checkpointed after the shift: the next owner restores the detector and alert (a fresh detector would
    stay quiet for 320 points), skips the records the checkpoint covers, and numbers on from its seq."""
    x = level_shift()
    labels = {"job": "api"}
    recs = records([aggregate(labels, i, float(x[i])) for i in range(N)])
    whole = run(step(), 5, recs, 500)
    first = step()
    made = run(first, 5, recs[:SHIFT + 3], 500)
    data = first.snapshot(5)
    first.forget(5)
    assert 5 not in first.progress and 5 not in first.scorers
    second = step()  # the partition's next owner
    second.restore(5, data)
    made += run(second, 5, recs[SHIFT - 10:], 500)  # given the last 13 records again (a replay's overlap)
    assert made == whole
    assert [decode(v, AlertEvent).state for _, v in made] == ["pending", "firing", "resolved"]
    assert second.messages == N - SHIFT - 3  # the 13 the checkpoint covers are not read again


def test_an_unreadable_checkpoint_starts_the_partition_afresh() -> None:
    s = step()
    s.restore(1, b"garbage")
    assert s.progress[1].offset == -1 and s.progress[1].seq == 0
    s.restore(2, None)
    assert Checkpoint.decode(s.snapshot(2)) == Checkpoint()


def test_a_quiet_partition_makes_nothing() -> None:
    s = step()
    s.restore(0, None)
    out = s.tick(0)
    assert out.records == [] and out.first_seq == 1

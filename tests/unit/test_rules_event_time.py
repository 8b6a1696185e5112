"""The rules agent's event time per source (issue 17), without a broker: given these messages on one
samples partition, written at these processing times, expect these samples stored, late or refused, and
this watermark. Before per-source event time the rules agent kept one watermark per partition: a second
source sending multi-point blocks had its samples made late by the first, and one far-future sample
written straight to the topic moved the partition's watermark a year ahead (every later sample late, no
rule evaluated on real data again)."""

from __future__ import annotations

import math

import orjson

from watchkeeper.agents.rules_ingest import Mark
from watchkeeper.agents.rules_step import Checkpoint, RulesStep
from watchkeeper.schemas.codec import encode
from watchkeeper.schemas.samples import SampleBatch, SeriesBlock

NOW = 1_800_000_000.0  # processing time (the Kafka record's timestamp), seconds
YEAR = 365 * 86400.0


def batch(source: str, name: str, ts: list[float], **labels: str) -> bytes:
    block = SeriesBlock(name=name, labels=labels, ts=ts, values=[1.0] * len(ts))
    return encode(SampleBatch(source=source, series=[block]))


def new_step(partitions: int = 1, idle_timeout: float = 25.0) -> RulesStep:
    def no_engine(*_: object) -> object:
        raise AssertionError("no engine needed here")

    step = RulesStep([], 4, no_engine, lateness=5.0, retention=600.0,  # type: ignore[arg-type]
                     max_future=600.0, idle_timeout=idle_timeout)
    for p in range(partitions):
        step.start(p, Mark(0, -math.inf, -math.inf))
        step.seen_end(p, 0)
    return step


def stored(step: RulesStep, name: str) -> list[float]:
    step.flush()
    return sorted(float(t) for s in step.store.select([], 0, 1e12) if s.labels["__name__"] == name for t in s.ts)


def block(t0: float, n: int = 10) -> list[float]:
    return [t0 + i for i in range(n)]


def hello(step: RulesStep, sources: list[str], t: float, now: float, offset: int = 0) -> int:
    """One sample of each source at `t` (written at `now`): the sources are live on the partition."""
    for src in sources:
        step.ingest(0, offset, src.encode(), batch(src, f"m_{src}", [t]), now)
        offset += 1
    return offset


def test_two_sources_in_one_partition_do_not_make_each_other_late() -> None:
    """Each source sends 10-point blocks ending at its message's processing time; they interleave. One
    watermark for the partition made the second source's first 5 points of every block late."""
    step = new_step()
    offset = hello(step, ["a", "b"], NOW - 11.0, NOW - 10.0)
    for k in range(3):
        for src in ("a", "b"):
            step.ingest(0, offset, src.encode(), batch(src, f"m_{src}", block(NOW + 10 * k - 9)), NOW + 10 * k)
            offset += 1
    assert step.late == 0 and step.samples == 62
    assert stored(step, "m_a") == stored(step, "m_b") == [NOW - 11.0, *block(NOW - 9.0, 30)]
    assert step.current_watermark() == NOW + 20.0 - 5.0


def test_a_skewed_source_neither_makes_others_late_nor_moves_the_watermark_past_them() -> None:
    """A source whose clock is 5 minutes ahead (within max_future, so accepted): its samples are kept, the
    others' are not late, and the watermark waits for the slowest live source."""
    step = new_step()
    hello(step, ["a"], NOW - 11.0, NOW - 10.0)
    step.ingest(0, 1, b"skewed", batch("skewed", "m_s", block(NOW + 300.0)), NOW)
    step.ingest(0, 2, b"a", batch("a", "m_a", block(NOW - 9.0)), NOW)
    step.ingest(0, 3, b"a", batch("a", "m_a", block(NOW + 1.0)), NOW + 10.0)
    assert step.late == 0
    assert stored(step, "m_a") == [NOW - 11.0, *block(NOW - 9.0, 20)]
    assert stored(step, "m_s") == block(NOW + 300.0)
    assert step.current_watermark() == NOW + 10.0 - 5.0


def test_a_skewed_source_first_on_the_partition_does_not_blind_the_ones_after_it() -> None:
    """The watermark never passes the partition's processing clock: a correct source joining after a
    skewed one is not late."""
    step = new_step()
    step.ingest(0, 0, b"skewed", batch("skewed", "m_s", block(NOW + 300.0)), NOW)
    step.ingest(0, 1, b"a", batch("a", "m_a", block(NOW - 4.0)), NOW + 1.0)
    assert step.late == 0 and stored(step, "m_a") == block(NOW - 4.0)


def test_a_far_future_sample_written_straight_to_the_topic_is_refused_as_future() -> None:
    """One sample a year ahead, produced directly (not through the push API, which refuses it): counted
    `future` for its source, stored nowhere, and the partition's rules keep seeing every normal sample."""
    step = new_step()
    step.ingest(0, 0, b"a", batch("a", "m_a", block(NOW - 9.0)), NOW)
    step.ingest(0, 1, b"evil", batch("evil", "m_e", [NOW + YEAR]), NOW)
    step.ingest(0, 2, b"a", batch("a", "m_a", block(NOW + 1.0)), NOW + 10.0)
    step.ingest(0, 3, b"evil", batch("evil", "m_e", block(NOW + 11.0)), NOW + 20.0)  # then its normal data
    assert step.late == 0  # one watermark per partition: all 10 later samples of `a` and `evil` late
    assert step.future == 1 and step.source_future() == {"evil": 1}
    assert stored(step, "m_a") == block(NOW - 9.0, 20)
    assert stored(step, "m_e") == block(NOW + 11.0)
    assert step.current_watermark() == NOW + 10.0 - 5.0
    assert step.clocks[0].max_any < NOW + 3600.0  # nor does it reach the replay marks


def test_a_time_beyond_int64_nanoseconds_is_refused_without_overflow() -> None:
    step = new_step()
    step.ingest(0, 0, b"a", batch("a", "m_a", [NOW - 10.0, 1e300]))  # no processing time: no future bound
    assert step.bad_timestamp == 1 and step.future == 0
    assert stored(step, "m_a") == [NOW - 10.0]
    assert step.current_watermark() == NOW - 15.0


def test_a_source_far_behind_the_others_does_not_hold_the_watermark() -> None:
    """A live source whose clock lags by more than max_future would hold every rule back by as much: it
    stops counting, and its samples behind the watermark are late."""
    step = new_step()
    step.ingest(0, 0, b"slow", batch("slow", "m_s", block(NOW - 3609.0)), NOW)
    step.ingest(0, 1, b"a", batch("a", "m_a", block(NOW - 9.0)), NOW)
    assert step.current_watermark() == NOW - 5.0
    step.ingest(0, 2, b"slow", batch("slow", "m_s", block(NOW - 3599.0)), NOW + 10.0)
    assert step.late == 10 and step.clocks[0].sources.late == [10, 0]


def test_an_idle_source_stops_holding_the_watermark() -> None:
    step = new_step(idle_timeout=25.0)
    hello(step, ["a", "b"], NOW - 11.0, NOW - 10.0)
    step.ingest(0, 2, b"a", batch("a", "m_a", block(NOW - 9.0)), NOW)
    assert step.current_watermark() == NOW - 11.0 - 5.0  # b holds it
    step.ingest(0, 3, b"a", batch("a", "m_a", block(NOW + 21.0)), NOW + 30.0)  # b silent for 40 s > 25
    assert step.current_watermark() == NOW + 30.0 - 5.0
    step.ingest(0, 4, b"b", batch("b", "m_b", block(NOW + 21.0)), NOW + 30.0)  # back: behind the watermark
    assert step.late == 5 and stored(step, "m_b") == [NOW - 11.0, *block(NOW + 26.0, 5)]


def test_a_checkpoint_replay_mark_carries_the_sources() -> None:
    """Replaying from a mark makes the same decisions as reading from the beginning: the mark holds every
    source's event time and the processing clock (a checkpoint without them still decodes)."""
    msgs = []
    for i in range(40):
        t = NOW - 4000.0 + 30.0 * i
        msgs.append((b"a", batch("a", "m_a", block(t - 9.0)), t))
        msgs.append((b"b", batch("b", "m_b", block(t - 25.0)), t))  # b's blocks arrive 16 s later than a's
        if i == 20:
            msgs.append((b"evil", batch("evil", "m_e", [t + YEAR]), t))
        if 10 <= i < 20:
            msgs.pop()  # b silent for 300 s: idle, back behind the watermark
    full = new_step()
    took = []
    for i, (key, raw, now) in enumerate(msgs):
        before = full.samples
        full.ingest(0, i, key, raw, now)
        took.append(full.samples - before)
    marks = full.clocks[0].marks
    assert full.late and full.future == 1 and len(marks) > 10
    for mark in marks[1:]:
        cp = Checkpoint.decode(Checkpoint(0, "o", full.watermark, {}, {}, {0: mark}).encode())
        assert cp.replay[0] == mark and mark.sources is not None
        resumed = new_step()
        resumed.start(0, cp.replay[0])
        again = []
        for i, (key, raw, now) in enumerate(msgs):
            if i >= mark.offset:
                before = resumed.samples
                resumed.ingest(0, i, key, raw, now)
                again.append(resumed.samples - before)
        assert again == took[mark.offset:]
        assert resumed.current_watermark() == full.current_watermark()
        assert resumed.clocks[0].sources.state() == full.clocks[0].sources.state()
    old = orjson_replay(Checkpoint(0, "o", 1.0, {}, {}, {0: Mark(7, 1.0, 2.0)}))
    assert Checkpoint.decode(old).replay[0] == Mark(7, 1.0, 2.0)


def orjson_replay(cp: Checkpoint) -> bytes:
    """The checkpoint as a version before per-source event time wrote it (JSON, before the one checkpoint
    framing; 3 numbers per replay mark)."""
    d = {"v": 1, "shard": cp.shard, "owner": cp.owner, "watermark": cp.watermark, "units": {}, "barriers": {},
         "replay": {str(p): [m.offset, m.max_et, m.max_any] for p, m in cp.replay.items()}}
    return orjson.dumps(d)


def test_series_churn_does_not_grow_the_rules_registry() -> None:
    """Every minute 100 series are replaced by new ones (a deploy's new pod names) for an hour of event
    time: the series whose points were all pruned leave the registry and their indexes are reused, so the
    registry holds about the series of one retention (600 s), not every series ever seen (6,000)."""
    step = new_step()
    for minute in range(60):
        t = NOW + 60.0 * minute
        blocks = [SeriesBlock(name="churn", labels={"pod": f"{minute}-{i}"}, ts=[t + 1.0, t + 30.0], values=[1.0, 2.0])
                  for i in range(100)]
        step.ingest(0, minute, b"a", encode(SampleBatch(source="a", series=blocks)), t + 30.0)
        step.advance()
    assert step.samples == 12_000 and step.late == 0
    assert len(step.registry) <= 1_300 and len(step.registry.names) <= 1_400
    assert step.store.series_count() <= 1_300
    assert len(step.registry) == step.store.series_count()  # exactly the series with points left

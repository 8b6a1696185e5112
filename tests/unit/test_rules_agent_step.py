"""The rules agent's stream state without a broker: lateness per partition, the watermark over all
partitions, replay marks and checkpoints."""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass

import numpy as np
import orjson

from watchkeeper.agents.rules_ingest import Mark
from watchkeeper.agents.rules_step import Checkpoint, RulesStep, start_marks
from watchkeeper.core.rule_units import RuleUnit
from watchkeeper.schemas.alerts import AlertEvent
from watchkeeper.schemas.codec import decode, encode
from watchkeeper.schemas.samples import Sample, SampleBatch, SeriesBlock


def batch(name: str, ts: list[float], values: list[float] | None = None, **labels: str) -> bytes:
    block = SeriesBlock(name=name, labels=labels, ts=ts, values=values or [1.0] * len(ts))
    return encode(SampleBatch(source="test", series=[block]))


def new_step(partitions: int = 2, lateness: float = 5.0) -> RulesStep:
    def no_engine(*_: object) -> object:
        raise AssertionError("no engine needed here")

    step = RulesStep([], 4, no_engine, lateness=lateness, retention=600.0)  # type: ignore[arg-type]
    for p in range(partitions):
        step.start(p, Mark(0, -math.inf, -math.inf))
    return step


def stored(step: RulesStep, name: str) -> list[float]:
    step.flush()
    found = step.store.select([], 0, 1e12)
    return [float(t) for s in found if s.labels["__name__"] == name for t in s.ts]


def test_watermark_waits_for_every_partition_that_had_data() -> None:
    step = new_step()
    step.seen_end(0, 3)
    step.seen_end(1, 2)
    step.ingest(0, 0, b"a", batch("x", [100.0, 110.0]))
    assert step.current_watermark() == -math.inf  # partition 1 holds data not read yet
    step.ingest(1, 0, b"b", batch("y", [90.0]))
    assert step.current_watermark() == 90.0 - 5.0
    step.ingest(1, 1, b"b", batch("y", [130.0]))
    assert step.current_watermark() == 110.0 - 5.0


def test_an_empty_partition_does_not_hold_the_watermark() -> None:
    step = new_step()
    step.seen_end(0, 1)
    step.seen_end(1, 0)
    step.ingest(0, 0, b"a", batch("x", [100.0]))
    assert step.current_watermark() == 95.0


def test_late_samples_are_judged_by_their_own_partition() -> None:
    step = new_step()
    step.seen_end(0, 2)
    step.seen_end(1, 1)
    step.ingest(0, 0, b"a", batch("x", [100.0, 120.0]))
    step.ingest(0, 1, b"a", batch("x", [114.0, 116.0, 121.0], a="1"))  # 114 <= 120 - 5: late
    step.ingest(1, 0, b"b", batch("y", [50.0]))  # far behind partition 0, but not late in its own
    assert step.late == 1
    assert sorted(stored(step, "x")) == [100.0, 116.0, 120.0, 121.0]
    assert stored(step, "y") == [50.0]


def test_recorded_output_is_stored_but_moves_no_watermark() -> None:
    step = new_step()
    step.seen_end(0, 1)
    step.seen_end(1, 0)
    step.ingest(0, 0, b"a", batch("x", [100.0]))
    step.ingest(1, 0, b"rules/g", batch("job:x:sum", [95.0]))
    assert stored(step, "job:x:sum") == [95.0]
    assert step.current_watermark() == 95.0
    assert step.clocks[1].max_et == -math.inf and step.recorded_in == 1


def test_a_message_read_twice_is_applied_once() -> None:
    step = new_step(1)
    step.seen_end(0, 1)
    step.ingest(0, 0, b"a", batch("x", [100.0]))
    step.ingest(0, 0, b"a", batch("x", [100.0]))
    assert step.samples == 1


def test_bad_messages_are_counted_not_fatal() -> None:
    step = new_step(1)
    step.ingest(0, 0, b"a", b"{not json")
    step.ingest(0, 1, b"a", b'{"v": 1, "source": "s", "series": [{"name": "x", "ts": [1], "values": []}]}')
    assert step.bad == 2


def test_replay_from_a_mark_rebuilds_the_same_store() -> None:
    msgs = [batch("x", [float(t), float(t + 10)], [float(t), float(t)]) for t in range(0, 1200, 20)]
    msgs.insert(30, batch("x", [100.0]))  # late when it comes
    full = new_step(1)
    full.seen_end(0, len(msgs))
    for i, m in enumerate(msgs):
        full.ingest(0, i, b"a", m)
    full.watermark = full.current_watermark()
    cp = Checkpoint.decode(full.checkpoint(0).encode())
    mark = cp.replay[0]
    assert 0 < mark.offset < len(msgs) and mark.max_any < full.watermark - full.retention

    resumed = new_step(1)
    resumed.start(0, mark)
    resumed.seen_end(0, len(msgs))
    for i, m in enumerate(msgs[mark.offset:], start=mark.offset):
        resumed.ingest(0, i, b"a", m)
    cutoff = full.watermark - full.retention
    want = [t for t in stored(full, "x") if t > cutoff]
    assert [t for t in stored(resumed, "x") if t > cutoff] == want
    assert resumed.current_watermark() == full.current_watermark()


def test_start_marks_read_from_the_beginning_for_a_unit_without_checkpoint() -> None:
    units = [RuleUnit("a", ("a",)), RuleUnit("b", ("b",))]
    cp = Checkpoint(1, "p", 500.0, {"a": b"snap"}, {"a": {}}, {0: Mark(7, 1.0, 2.0), 1: Mark(3, 4.0, 5.0)})
    assert start_marks([0, 1], units, {1: cp}) == {p: Mark(0, -math.inf, -math.inf) for p in (0, 1)}
    cp2 = Checkpoint(2, "q", 400.0, {"b": b"snap"}, {"b": {}}, {0: Mark(5, 0.5, 0.5), 1: Mark(9, 6.0, 6.0)})
    assert start_marks([0, 1], units, {1: cp, 2: cp2}) == {0: Mark(5, 0.5, 0.5), 1: Mark(3, 4.0, 5.0)}


def test_checkpoint_round_trips() -> None:
    cp = Checkpoint(3, "host:1", 1234.5, {"u": bytes(range(256))}, {"u": {2: 17}},
                    {0: Mark(1, -math.inf, 2.0), 5: Mark(4, 3.0, 3.5)})
    assert Checkpoint.decode(cp.encode()) == cp
    assert cp.encode()[:2] == b"WK"  # the one checkpoint framing (runtime.checkpoint)


def test_a_checkpoint_in_the_json_framing_from_before_still_reads() -> None:
    """Written by a worker before the rule engine's checkpoints took the one framing: an upgraded worker
    resumes its shards from it."""
    old = orjson.dumps({"v": 1, "shard": 3, "owner": "host:1", "watermark": 1234.5,
                        "units": {"u": base64.b64encode(b"\x00snap").decode()}, "barriers": {"u": {"2": 17}},
                        "replay": {"0": [1, None, 2.0], "5": [4, 3.0, 3.5]}})
    assert Checkpoint.decode(old) == Checkpoint(3, "host:1", 1234.5, {"u": b"\x00snap"}, {"u": {2: 17}},
                                                {0: Mark(1, -math.inf, 2.0), 5: Mark(4, 3.0, 3.5)})


def test_partitions_far_ahead_are_paused() -> None:
    step = new_step()
    step.seen_end(0, 1)
    step.seen_end(1, 1)
    step.ingest(0, 0, b"a", batch("x", [100.0]))
    step.ingest(1, 0, b"b", batch("y", list(np.arange(100.0, 1000.0, 10.0))))
    step.watermark = step.current_watermark()
    assert step.ahead(120.0) == [1]


def test_a_takeover_far_behind_this_store_needs_a_rewind() -> None:
    step = new_step(1)
    step.history = 400.0
    step.seen_end(0, 100)
    for i in range(100):
        step.ingest(0, i, b"a", batch("x", [20.0 * i]))
    step.advance()  # owns nothing: prunes to the watermark - retention (600 s)
    assert step.history_floor() == 1975.0 - 600.0 and min(stored(step, "x")) == 1380.0
    near = Checkpoint(0, "other", 1900.0, {"g": b""}, {}, {0: Mark(40, 780.0, 780.0)})
    far = Checkpoint(0, "other", 1000.0, {"g": b""}, {}, {0: Mark(20, 380.0, 380.0)})
    assert step.covers(near) and not step.covers(far)
    step.rewind(far.replay)
    assert step.store.series_count() == 0 and step.watermark == -math.inf
    assert step.clocks[0].next_offset == 20 and step.clocks[0].max_et == 380.0
    assert step.covers(far)
    step.seen_end(0, 100)
    for i in range(20, 100):
        step.ingest(0, i, b"a", batch("x", [20.0 * i]))
    assert min(stored(step, "x")) == 400.0  # the store holds what the far checkpoint reads


class RecordingEngine:
    """A stand-in engine that records the watermarks it is advanced to and records one sample per call
    (the orchestration is under test here; the real engine has its own tests)."""

    def __init__(self, unit: RuleUnit, snapshot: bytes | None) -> None:
        self.calls: list[float] = orjson.loads(snapshot) if snapshot else []

    def advance(self, store: object, watermark: float) -> EngineStep:
        self.calls.append(watermark)
        return EngineStep([], [Sample(name="job:x:sum", ts=watermark, value=len(self.calls)),
                               Sample(name="job:x:ratio", ts=watermark, value=0.0).model_copy(
                                   update={"value": float("nan")})])

    def snapshot(self) -> bytes:
        return orjson.dumps(self.calls)


@dataclass
class EngineStep:
    alerts: list[AlertEvent]
    recorded: list[Sample]


def engine_step(units: list[RuleUnit]) -> tuple[RulesStep, dict[str, RecordingEngine]]:
    engines: dict[str, RecordingEngine] = {}

    def factory(unit: RuleUnit, snapshot: bytes | None, origin: float) -> RecordingEngine:
        engines[unit.key] = RecordingEngine(unit, snapshot)
        return engines[unit.key]

    step = RulesStep(units, 1, factory, lateness=5.0, retention=600.0,  # type: ignore[arg-type]
                     record_groups={"job:x:sum": "rec"})
    for p in range(2):
        step.start(p, Mark(0, -math.inf, -math.inf))
        step.seen_end(p, 1)
    return step, engines


def test_a_fresh_unit_starts_at_the_streams_origin_and_publishes_per_group() -> None:
    unit = RuleUnit("alerts+rec", ("alerts", "rec"))
    step, engines = engine_step([unit])
    step.own(0, None)
    step.ingest(0, 0, b"a", batch("x", [100.0, 400.0]))
    step.ingest(1, 0, b"b", batch("y", [50.0, 300.0]))
    outputs = step.advance()
    assert engines[unit.key].calls == [50.0, 295.0]  # origin first, then the watermark
    [out] = outputs
    assert out.dropped == 2  # NaN cannot go on the wire
    [(key, value)] = out.recorded
    assert key == b"rules/rec"
    assert [b.values for b in decode(value, SampleBatch).series] == [[1.0], [2.0]]


def test_a_restored_unit_waits_for_its_own_output_to_be_read_back() -> None:
    unit = RuleUnit("rec", ("rec",))
    step, engines = engine_step([unit])
    cp = Checkpoint(0, "other", 200.0, {"rec": orjson.dumps([100.0, 200.0])}, {"rec": {1: 3}}, {})
    step.own(0, cp)
    step.seen_end(1, 5)
    step.ingest(0, 0, b"a", batch("x", [300.0]))
    step.ingest(1, 0, b"b", batch("y", [300.0]))
    assert step.advance() == [] and engines["rec"].calls == [100.0, 200.0]
    step.ingest(1, 3, b"rules/rec", batch("job:x:sum", [200.0]))
    step.ingest(1, 4, b"b", batch("y", [310.0]))
    assert len(step.advance()) == 1 and engines["rec"].calls == [100.0, 200.0, 295.0]
    again = step.checkpoint(0)
    assert orjson.loads(again.units["rec"]) == [100.0, 200.0, 295.0] and again.watermark == 295.0
    assert again.barriers == {"rec": {1: 3}}

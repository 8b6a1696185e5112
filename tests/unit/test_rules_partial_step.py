"""The partial stage of partitioned rule evaluation, without a broker: given these samples messages on a
partition (several sources, late, future and unreadable samples, rule output read back), expect one
partials record per (unit, tick) the partition's watermark passed, in tick order, with `wk-wm` headers
that never overstate what is complete, heartbeats when no tick is due, `empty: true` for a partition that
never had a sample; the same records however the input is cut into batches, and the same records after a
restart from any checkpoint as in an uninterrupted run."""

from __future__ import annotations

import math
from collections.abc import Sequence

import orjson
import pytest

from watchkeeper.agents.rules_partial_step import HEARTBEAT_KEY, WM_HEADER, PartialStep
from watchkeeper.agents.rules_wiring import LoadedRules, loaded_rules
from watchkeeper.core.promql.evaluator import evaluate
from watchkeeper.core.promql.series_store import SeriesStore
from watchkeeper.core.promql.sharding import merge, partials_from_json
from watchkeeper.core.rules.loader import load_rules_text
from watchkeeper.core.rules.unit_plans import UnitPlans, unit_plans
from watchkeeper.runtime.checkpoint import Checkpoint
from watchkeeper.runtime.partition_state import Record
from watchkeeper.schemas.codec import encode
from watchkeeper.schemas.samples import SampleBatch, SeriesBlock

T0 = 1_800_000_000.0  # event time of the first samples (a multiple of every interval below)
RULES = """
groups:
- name: rates
  interval: 10s
  rules:
  - record: job:requests:rate1m
    expr: sum by (job) (rate(http_requests_total[1m]))
  - alert: Busy
    expr: job:requests:rate1m > 1
- name: up
  interval: 30s
  rules:
  - alert: Down
    expr: up == 0
    for: 1m
  - alert: ApiMissing
    expr: absent(up{job="api"})
"""

Out = tuple[bytes, bytes, list[tuple[str, bytes]], int]  # key, value, own headers, sequence number


def loaded() -> LoadedRules:
    return loaded_rules(load_rules_text(RULES), 4, 5.0)


def new_step(heartbeat: float = 1.0) -> PartialStep:
    rules = loaded()
    plans = unit_plans(rules.units, rules.groups)
    return PartialStep(plans, rules.limits, retention=rules.history, heartbeat=heartbeat)


def samples(source: str, t: float, n: int, job: str = "api", up: float = 1.0) -> bytes:
    """One message of `source`: its counter at `n` and its `up` at time t."""
    blocks = [SeriesBlock(name="http_requests_total", labels={"job": job, "instance": source}, kind="counter",
                          ts=[t], values=[float(n)]),
              SeriesBlock(name="up", labels={"job": job, "instance": source}, ts=[t], values=[up])]
    return encode(SampleBatch(source=source, series=blocks))


def stream(partition: int, seconds: int = 400) -> list[Record]:
    """Two sources every 5 s (written 1 s after their samples); one of them goes down for a while; a
    late sample, a future one, an unreadable message and recorded-rule output read back mixed in."""
    recs: list[Record] = []
    sources = [f"host{partition}a", f"host{partition}b"]
    for k in range(0, seconds, 5):
        t = T0 + k
        for i, src in enumerate(sources):
            up = 0.0 if i == 1 and 100 <= k < 220 else 1.0
            recs.append((len(recs), src.encode(), samples(src, t, k * (i + 2), up=up), t + 1))
        if k == 50:
            recs.append((len(recs), sources[0].encode(), samples(sources[0], t - 30, 9999), t + 1))  # late
        if k == 60:
            recs.append((len(recs), sources[1].encode(), samples(sources[1], t + 7200, 1), t + 1))  # future
        if k == 70:
            recs.append((len(recs), b"junk", b"not json", t + 1))
        if k == 80:
            rec = SampleBatch(source="rules/rates", series=[SeriesBlock(name="job:requests:rate1m",
                              labels={"job": "api"}, ts=[t], values=[42.0])])
            recs.append((len(recs), b"rules/rates", encode(rec), t + 1))
    return recs


def feed(step: PartialStep, partition: int, records: Sequence[Record], batch: int) -> list[Out]:
    out: list[Out] = []
    for i in range(0, len(records), batch):
        got = step.process_records(partition, records[i:i + batch], 0.0)
        assert len(got.headers) == len(got.records)
        out += [(k, v, h, got.first_seq + j) for j, ((k, v), h) in enumerate(zip(got.records, got.headers,
                                                                                strict=True))]
    return out


def wm_of(headers: list[tuple[str, bytes]]) -> float:
    [value] = [v for name, v in headers if name == WM_HEADER]
    return float(value)


def test_records_one_per_unit_tick_in_tick_order_with_safe_watermarks() -> None:
    step = new_step()
    out = feed(step, 0, stream(0), 7)
    ticks = [(orjson.loads(v)["t"], k.decode(), sorted(orjson.loads(v)["groups"])) for k, v, _, _ in out
             if k != HEARTBEAT_KEY]
    assert [t for t, _, _ in ticks] == sorted(t for t, _, _ in ticks)
    rates = [t for t, unit, _ in ticks if unit == "rates"]
    ups = [t for t, unit, _ in ticks if unit == "up"]
    wm = step.parts[0].clock.wm
    assert rates == [T0 + 10 * i for i in range(len(rates))] and rates[-1] <= wm < rates[-1] + 10
    assert ups == [T0 + 30 * i for i in range(len(ups))] and ups[-1] <= wm < ups[-1] + 30
    assert {tuple(groups) for _, _, groups in ticks} == {("rates",), ("up",)}
    # A record's wk-wm never says a tick is complete before all its records are out.
    seen: set[tuple[float, str]] = set()
    for k, v, h, _ in out:
        if k != HEARTBEAT_KEY:
            seen.add((orjson.loads(v)["t"], k.decode()))
        complete = wm_of(h)
        assert all((t, u) in seen for t, u, _ in ticks if t <= complete)
    assert [wm_of(h) for *_, h, _ in out] == sorted(wm_of(h) for *_, h, _ in out)
    assert [s for *_, s in out] == list(range(1, len(out) + 1))
    assert step.intake.late == 2 and step.intake.future == 2 and step.intake.bad == 1  # two series a message
    assert step.intake.recorded_skipped == 1  # rule output is the merge stage's
    assert {s.labels["__name__"] for s in step.parts[0].buffer.store.select([], 0, 1e12)} == {
        "http_requests_total", "up"}


def test_the_same_records_however_the_input_is_cut_into_batches() -> None:
    records = stream(1)
    runs = []
    for batch in (1, 4, 64, len(records)):
        step = new_step()
        runs.append(feed(step, 1, records, batch))
    assert runs[0] and all(run == runs[0] for run in runs[1:])


def test_restart_from_any_checkpoint_gives_the_uninterrupted_run() -> None:
    """Checkpoint after every batch; a new owner restored from each one, fed from where the runtime
    replays (the restored progress), makes exactly the records that followed it, with their numbers. The
    stream is longer than the rules' reach, so the later restores replay from a mark, not the start."""
    records = stream(0, 1200)
    whole = new_step()
    checkpoints: list[bytes] = []
    made: list[Out] = []
    for i in range(0, len(records), 19):
        made += feed(whole, 0, records[i:i + 19], 19)
        checkpoints.append(whole.snapshot(0))
    for cp in checkpoints:
        again = new_step()
        again.restore(0, cp)
        start = again.progress[0].offset + 1
        seq = again.progress[0].seq
        rest = feed(again, 0, records[start:], 13)
        assert rest == made[seq:], f"restart at seq {seq} from offset {start}"
    # The replay mark lies far enough back: restores late in the stream do not replay from the start.
    late_restore = new_step()
    late_restore.restore(0, checkpoints[-1])
    assert 0 < late_restore.progress[0].offset < len(records) - 1


def test_a_checkpoint_taken_while_replaying_is_the_restored_one() -> None:
    records = stream(0)
    whole = new_step()
    feed(whole, 0, records, 50)
    cp = whole.snapshot(0)
    again = new_step()
    again.restore(0, cp)
    start = again.progress[0].offset + 1
    feed(again, 0, records[start:start + 3], 3)
    assert again.snapshot(0) == cp


def test_idle_partition_that_never_had_a_sample_says_empty_once() -> None:
    step = new_step()
    step.restore(3, None)
    got = step.tick(3)
    assert got.records == [(HEARTBEAT_KEY, orjson.dumps({"v": 1, "empty": True}))]
    assert got.first_seq == 1 and wm_of(got.headers[0]) == -math.inf and got.tick_after == -1
    assert step.tick(3).records == []
    # Only rule output and junk on it: still empty, and the state says it was told.
    step.process_records(3, [(0, b"rules/rates", b"{}", T0), (1, b"x", b"junk", T0)], 0.0)
    assert step.tick(3).records == []
    again = new_step()
    again.restore(3, step.snapshot(3))
    assert again.tick(3).records == [] and again.progress[3].seq == 1


def test_idle_tick_of_a_partition_with_samples_makes_nothing() -> None:
    step = new_step()
    feed(step, 0, stream(0, 20), 5)
    assert step.tick(0).records == []


def test_heartbeats_at_most_once_per_heartbeat_seconds_when_no_tick_is_due() -> None:
    step = new_step(heartbeat=3.0)
    recs: list[Record] = [(i, b"a", samples("a", T0 + 1 + i, i), T0 + 1 + i) for i in range(9)]  # 1 s apart
    out = feed(step, 0, recs, 2)
    beats = [wm_of(h) for k, _, h, _ in out if k == HEARTBEAT_KEY]
    ticks = [orjson.loads(v)["t"] for k, v, _, _ in out if k != HEARTBEAT_KEY]
    assert ticks == []  # the first tick (T0 + 10: after the earliest sample, T0 + 1) is not passed yet
    assert beats == [T0 + 1 - 5, T0 + 4 - 5, T0 + 7 - 5]
    assert all(orjson.loads(v) == {"v": 1, "empty": False} for k, v, _, _ in out)


def test_late_and_future_samples_are_not_in_the_partials() -> None:
    """A late point of a counter would make its rate negative; a future one would move the watermark an
    hour: neither is stored, and both are counted per batch."""
    step = new_step()
    recs = stream(0, 120)
    out = []
    rejected: dict[str, int] = {}
    for i in range(0, len(recs), 10):
        got = step.process_records(0, recs[i:i + 10], 0.0)
        out += got.records
        for reason, n in got.rejected.items():
            rejected[reason] = rejected.get(reason, 0) + n
    assert rejected == {"late": 2, "future": 2}
    assert step.parts[0].clock.wm < T0 + 200
    stored = [(float(t), float(v)) for s in step.parts[0].buffer.store.select([], 0, 1e12)
              if s.labels.get("instance") == "host0a" and s.labels["__name__"] == "http_requests_total"
              for t, v in zip(s.ts, s.values, strict=True)]
    assert 9999.0 not in [v for _, v in stored]


@pytest.mark.parametrize("query_rule", [0, 1])
def test_merged_partials_of_two_partitions_evaluate_as_one_store(query_rule: int) -> None:
    """The partials of partitions 0 and 1 at a tick, merged in partition order, give what one store of
    both partitions' samples gives (the rules that read only samples)."""
    rules = loaded()
    plans: list[UnitPlans] = unit_plans(rules.units, rules.groups)
    step = PartialStep(plans, rules.limits, retention=rules.history)
    whole = SeriesStore(math.inf)
    per_tick: dict[float, dict[int, list[object]]] = {}
    for p in (0, 1):
        for k, v, _, _ in feed(step, p, stream(p), 11):
            if k == b"up":
                body = orjson.loads(v)
                per_tick.setdefault(body["t"], {})[p] = body["groups"]["up"][query_rule]
        step.parts[p].buffer.flush()
        for s in step.parts[p].buffer.store.select([], 0, 1e12):
            labels = dict(s.labels)
            whole.append(labels.pop("__name__"), labels, s.ts, s.values)
    plan = next(u for u in plans if u.unit.key == "up").plans["up"][query_rule]
    both = {t: parts for t, parts in per_tick.items() if set(parts) == {0, 1}}
    assert len(both) > 5
    for t, parts in sorted(both.items()):
        leaves = merge(plan, [partials_from_json(parts[0]), partials_from_json(parts[1])])
        assert evaluate(plan.expr, t, SeriesStore(math.inf), leaves=leaves) == evaluate(plan.expr, t, whole), t


def test_an_unreadable_checkpoint_starts_the_partition_from_its_beginning(caplog: pytest.LogCaptureFixture) -> None:
    """Replayed from offset 0 with sequence 0, the partition makes its records again with their numbers
    (the runtime sends none that are already out)."""
    records = stream(0, 100)
    whole = new_step()
    made = feed(whole, 0, records, 10)
    for junk in (b"junk", Checkpoint(5, 3, {}, {"mark": [0, None, None]}).encode()):
        again = new_step()
        again.restore(0, junk)
        assert (again.progress[0].offset, again.progress[0].seq) == (-1, 0)
        assert feed(again, 0, records, 10) == made
    assert caplog.text.count("unreadable partial-stage checkpoint") == 2

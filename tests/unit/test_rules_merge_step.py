"""The merge stage without a broker: partials records made by hand (real `sharding.partial` over one store
per samples partition), read in any order, twice, with partitions empty or failing; the alerts must be the
ones a single store of every sample gives (the full mode's engine), each transition once."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import orjson

from watchkeeper.agents.rules_merge_step import HEARTBEAT_KEY, MergeCheckpoint, RulesMergeStep, start_offsets
from watchkeeper.agents.rules_merge_wiring import merge_step_factory
from watchkeeper.agents.rules_wiring import LoadedRules, loaded_rules
from watchkeeper.core.promql import sharding
from watchkeeper.core.promql.series_store import SeriesStore
from watchkeeper.core.rules.engine import RuleEngine
from watchkeeper.core.rules.loader import load_rules_text
from watchkeeper.core.rules.unit_plans import unit_plans
from watchkeeper.schemas.alerts import AlertEvent
from watchkeeper.schemas.codec import decode
from watchkeeper.schemas.samples import Sample, SampleBatch

RULES = """
groups:
  - name: rates
    interval: 30s
    rules:
      - record: job:req:rate1m
        expr: sum by (job) (rate(req_total[1m]))
  - name: alerts
    interval: 30s
    rules:
      - alert: RateHigh
        expr: job:req:rate1m > 5
        for: 1m
      - alert: HotHost
        expr: temp > 50
        keep_firing_for: 30s
      - alert: NoTemp
        expr: absent(temp{host="c"})
"""
PARTITIONS = 3  # partition 2 gets nothing


def loaded() -> LoadedRules:
    return loaded_rules(load_rules_text(RULES, "rules.yml"), shards=1, lateness=0.0)


def rate(t: float) -> float:
    return 10.0 if 120 <= t < 300 else 1.0


def partition_stores(end: float) -> list[SeriesStore]:
    """Partition 0: instance 1 of the counter and host a; partition 1: instance 2 and host b; 2: empty."""
    stores = [SeriesStore(math.inf) for _ in range(PARTITIONS)]
    ts = np.arange(0.0, end, 10.0)
    counter = np.cumsum([rate(t) * 10 / 2 for t in ts])
    counter[ts >= 200] -= counter[ts == 190][0]  # a counter reset on instance 2 only, below
    for p, (inst, host) in enumerate([("1", "a"), ("2", "b")]):
        values = np.cumsum([rate(t) * 10 / 2 for t in ts]) if p == 0 else counter
        stores[p].append("req_total", {"job": "api", "instance": inst}, ts, values)
        temp = np.where((ts >= 60) & (ts < 150), 60.0, 20.0) if host == "a" else np.full(len(ts), 20.0)
        keep = ts < 240 if host == "b" else ts >= 0  # host b goes quiet: staleness after 5 min
        stores[p].append("temp", {"host": host}, ts[keep], temp[keep])
    return stores


Rec = tuple[bytes, bytes, list[tuple[str, bytes]]]


def records(lr: LoadedRules, stores: list[SeriesStore], ticks: Iterable[float]) -> dict[int, list[Rec]]:
    """Per partition, the partial stage's records for `ticks` (every unit, every tick); partition 2 sends
    only `empty`."""
    out: dict[int, list[Rec]] = {p: [] for p in range(PARTITIONS)}
    plans = unit_plans(lr.units, lr.groups)
    for t in ticks:
        for p in (0, 1):
            for i, up in enumerate(plans):
                due = [g for g in up.groups if t % g.interval == 0]
                groups = {g.name: [sharding.partials_to_json(sharding.partial(pl, t, stores[p]))
                                   for pl in up.plans[g.name]] for g in due}
                # complete through just below t until the tick's last record, then the watermark
                wm = t + 5 if i == len(plans) - 1 else math.nextafter(t, -math.inf)
                out[p].append((up.unit.key.encode(), orjson.dumps({"v": 1, "t": t, "groups": groups}),
                               [("wk-wm", repr(wm).encode())]))
    out[2].append((HEARTBEAT_KEY, orjson.dumps({"v": 1, "empty": True}), [("wk-wm", b"-inf")]))
    return out


def reference(lr: LoadedRules, stores: list[SeriesStore], end: float) -> list[str]:
    """The full mode: every sample in one store, one engine; alerts, then recorded samples."""
    union = SeriesStore(math.inf)
    for s in stores:
        for d in s.select([], -math.inf, math.inf):
            labels = dict(d.labels)
            union.append(labels.pop("__name__"), labels, d.ts, d.values)
    engine = RuleEngine(lr.groups)
    engine.start_at(0.0)
    step = engine.advance(union, end)
    return [e.model_dump_json() for e in step.alerts] + [s.model_dump_json() for s in step.recorded]


def new_step(lr: LoadedRules) -> RulesMergeStep:
    step = merge_step_factory(lr, 1)("test")
    for p in range(PARTITIONS):
        step.start(p, 0)
    step.own(0, None)
    return step


def feed(step: RulesMergeStep, recs: dict[int, list[Rec]], order: Iterable[tuple[int, int]]) -> list[str]:
    """Ingest (partition, offset) in `order`, advancing after each; the alerts published, then the
    recorded samples."""
    alerts, recorded = [], []
    for p, o in order:
        key, value, headers = recs[p][o]
        step.ingest(p, o, key, value, headers)
        for out in step.advance():
            alerts += [decode(v, AlertEvent).model_dump_json() for _, v in out.alerts]
            recorded += [Sample(name=b.name, labels=b.labels, ts=b.ts[0], value=b.values[0]).model_dump_json()
                         for k, v in out.recorded for b in decode(v, SampleBatch).series if k == b"rules/rates"]
    return alerts + recorded


TICKS = [float(t) for t in range(0, 420, 30)]
END = 420.0


def test_partials_read_out_of_order_across_partitions_give_the_single_store_alerts() -> None:
    lr = loaded()
    stores = partition_stores(END)
    want = reference(lr, stores, TICKS[-1])
    assert {orjson.loads(a).get("rule") for a in want} == {"RateHigh", "HotHost", "NoTemp", None}
    recs = records(lr, stores, TICKS)
    # partition 1 read entirely before partition 0, the empty partition last
    order = [(1, o) for o in range(len(recs[1]))] + [(0, o) for o in range(len(recs[0]))] + [(2, 0)]
    assert feed(new_step(lr), recs, order) == want
    # interleaved the other way round
    order = [(2, 0)] + [(p, o) for o in range(len(recs[0])) for p in (0, 1)]
    assert feed(new_step(lr), recs, order) == want


def test_a_partition_that_reported_nothing_holds_the_ticks_back_one_that_is_empty_does_not() -> None:
    lr = loaded()
    recs = records(lr, partition_stores(END), TICKS)
    step = new_step(lr)
    assert feed(step, recs, [(p, o) for p in (0, 1) for o in range(len(recs[p]))]) == []
    assert all(step.ready(u.key) == -math.inf for u in lr.units)  # partition 2 unknown yet
    assert feed(step, recs, [(2, 0)]) != []
    assert all(step.ready(u.key) >= TICKS[-1] for u in lr.units)


def test_records_read_again_after_a_restart_or_twice_double_no_transition() -> None:
    lr = loaded()
    stores = partition_stores(END)
    want = reference(lr, stores, TICKS[-1])
    recs = records(lr, stores, TICKS)
    order = [(2, 0)] + [(p, o) for o in range(len(recs[0])) for p in (0, 1)]
    # cut right after a unit record of partition 0 whose partition-1 twin is not read yet: a tick pending
    half = next(i for i in range(len(order) // 2, len(order))
                if order[i - 1][0] == 0 and recs[0][order[i - 1][1]][0] == recs[0][0][0])
    first = new_step(lr)
    got = feed(first, recs, order[:half])
    got += feed(first, recs, order[half - 10:half])  # read twice
    cp = MergeCheckpoint.decode(first.checkpoint(0).encode())
    assert cp.replay[0] < first.clocks[0].next_offset  # partition 0's pending tick is read again
    # A new owner: starts where the checkpoint says, reads everything from there (some of it evaluated).
    second = merge_step_factory(lr, 1)("second")
    for p, o in start_offsets(list(range(PARTITIONS)), lr.units, {0: cp}).items():
        second.start(p, o)
    second.own(0, cp)
    rest = [(p, o) for p, o in order if o >= cp.replay[p]]
    got += feed(second, recs, rest)
    assert sorted(got) == sorted(want)  # every transition and recorded sample once


def test_a_rule_error_in_one_partitions_partial_fails_that_rule_for_that_tick_only() -> None:
    lr = loaded()
    stores = partition_stores(END)
    recs = records(lr, stores, TICKS)
    bad_tick = 120.0
    for i, (key, value, headers) in enumerate(recs[1]):
        d = orjson.loads(value)
        if "alerts" in d.get("groups", {}) and d["t"] == bad_tick:
            d["groups"]["alerts"][1] = [{"error": "boom in partition 1"}]
            recs[1][i] = (key, orjson.dumps(d), headers)
    step = new_step(lr)
    order = [(2, 0)] + [(p, o) for o in range(len(recs[0])) for p in (0, 1)]
    got = feed(step, recs, order)
    failures = step.take_failures()
    assert [(f.rule, f.t) for f in failures] == [("HotHost", bad_tick)]
    assert "boom in partition 1" in failures[0].message
    rules = {orjson.loads(a).get("rule") for a in got}
    assert rules == {"RateHigh", "HotHost", "NoTemp", None}  # the other rules and ticks evaluated


def test_a_shard_taken_over_after_its_records_were_skipped_reads_them_again() -> None:
    """A process reads the partials before it owns the shard (it skips them); owning it later, from a
    checkpoint or fresh, it seeks back and evaluates nothing before those records are read again."""
    lr = loaded()
    stores = partition_stores(END)
    want = reference(lr, stores, TICKS[-1])
    recs = records(lr, stores, TICKS)
    order = [(2, 0)] + [(p, o) for o in range(len(recs[0])) for p in (0, 1)]
    half = len(order) // 2
    first = new_step(lr)
    got = feed(first, recs, order[:half])
    cp = MergeCheckpoint.decode(first.checkpoint(0).encode())
    for owned in (cp, None):
        late = merge_step_factory(lr, 1)("late")
        for p in range(PARTITIONS):
            late.start(p, 0)
        assert feed(late, recs, order) == []  # owns nothing yet: every unit record skipped
        seeks = late.own(0, owned)
        assert seeks == ({p: cp.replay[p] for p in (0, 1)} if owned else {0: 0, 1: 0, 2: 0})
        assert all(late.ready(u.key) == -math.inf for u in lr.units)  # forgot what it skipped
        again = feed(late, recs, [(p, o) for p, o in order if o >= seeks.get(p, len(recs[p]))])
        assert sorted(got + again if owned else again) == sorted(want)


def advance_in_pieces(step: RulesMergeStep, calls: list[int], limit: int = 1000) -> list[str]:
    """`advance` asked to stop after every tick (`more` always says no), called again while `behind`; the
    number of calls appended to `calls`. Alerts, then recorded samples, as `feed`."""
    alerts, recorded = [], []
    n = 0
    while True:
        n += 1
        assert n < limit, "advance never stopped being behind"
        for out in step.advance(lambda: False):
            alerts += [decode(v, AlertEvent).model_dump_json() for _, v in out.alerts]
            recorded += [Sample(name=b.name, labels=b.labels, ts=b.ts[0], value=b.values[0]).model_dump_json()
                         for k, v in out.recorded for b in decode(v, SampleBatch).series if k == b"rules/rates"]
        if not step.behind:
            break
    calls.append(n)
    return alerts + recorded


def ingest_all(step: RulesMergeStep, recs: dict[int, list[Rec]], order: Iterable[tuple[int, int]]) -> None:
    for p, o in order:
        key, value, headers = recs[p][o]
        step.ingest(p, o, key, value, headers)


def test_advance_cut_after_every_tick_gives_the_single_store_alerts_and_says_when_ticks_are_left() -> None:
    """Every partial read first, then `advance` allowed one tick with partials per call: the calls are at
    least as many as the ticks, and the alerts and recorded samples those of the single store."""
    lr = loaded()
    stores = partition_stores(END)
    want = reference(lr, stores, TICKS[-1])
    recs = records(lr, stores, TICKS)
    step = new_step(lr)
    ingest_all(step, recs, [(2, 0)] + [(p, o) for p in (0, 1) for o in range(len(recs[p]))])
    calls: list[int] = []
    assert advance_in_pieces(step, calls) == want
    assert calls[0] >= len(TICKS)
    assert step.advance() == [] and not step.behind  # nothing left


def test_a_checkpoint_between_pieces_resumes_without_losing_or_doubling_a_transition() -> None:
    """The cut evaluation is checkpointed after a few pieces (ticks left pending); a new owner resumes from
    that checkpoint, reads from its replay offsets and goes on in pieces: every transition once."""
    lr = loaded()
    stores = partition_stores(END)
    want = reference(lr, stores, TICKS[-1])
    recs = records(lr, stores, TICKS)
    order = [(2, 0)] + [(p, o) for p in (0, 1) for o in range(len(recs[p]))]
    first = new_step(lr)
    ingest_all(first, recs, order)
    got: list[str] = []
    for _ in range(5):  # five pieces, then the process dies after its checkpoint
        for out in first.advance(lambda: False):
            got += [decode(v, AlertEvent).model_dump_json() for _, v in out.alerts]
            got += [Sample(name=b.name, labels=b.labels, ts=b.ts[0], value=b.values[0]).model_dump_json()
                    for k, v in out.recorded for b in decode(v, SampleBatch).series if k == b"rules/rates"]
    assert first.behind
    cp = MergeCheckpoint.decode(first.checkpoint(0).encode())
    second = merge_step_factory(lr, 1)("second")
    for p, o in start_offsets(list(range(PARTITIONS)), lr.units, {0: cp}).items():
        second.start(p, o)
    second.own(0, cp)
    ingest_all(second, recs, [(p, o) for p, o in order if o >= cp.replay[p]])
    got += advance_in_pieces(second, [])
    assert sorted(got) == sorted(want)

"""Event time per source: given messages from several sources (one with a clock ahead, one going quiet,
some with impossible numbers), expect each source's windows as if it were alone, the refused samples
dead-lettered with their reason, and the same output however the input is cut or restored."""

from __future__ import annotations

import base64
import itertools
import math

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchkeeper.agents.window_step import StepOutput, WindowLimits, WindowStep
from watchkeeper.core.checkpoint_frame import unframe
from watchkeeper.core.sample_columns import SampleColumns
from watchkeeper.core.sample_rejects import Reject
from watchkeeper.core.series_registry import SeriesRegistry
from watchkeeper.core.window_output import aggregate_records
from watchkeeper.core.windows import WindowEngine
from watchkeeper.schemas import DeadLetter, WindowAggregate, decode

NOW = 1_800_000_000.0  # processing time of the tests (2027)


def cols(series: list[int], ts: list[float], values: list[float] | None = None) -> SampleColumns:
    return SampleColumns(np.asarray(series, dtype=np.int64), np.asarray(ts, dtype=float),
                         np.asarray(values if values is not None else [1.0] * len(ts), dtype=float),
                         np.zeros(len(ts), dtype=bool))


def batch(source: str, ts: list[float], values: list[float] | None = None, name: str = "cpu") -> bytes:
    return orjson.dumps({"v": 1, "source": source, "labels": {"host": source}, "series": [
        {"name": name, "labels": {}, "kind": "gauge", "ts": ts, "values": values or [1.0] * len(ts)}]})


def letters(out: StepOutput) -> list[DeadLetter]:
    return [decode(v, DeadLetter) for _, v in out.deadletters]


def windows(out: StepOutput) -> list[tuple[str, float, int]]:
    return [(m.labels.get("host", ""), m.start, m.count)
            for m in (decode(v, WindowAggregate) for _, v in out.records)]


# -- per-source watermarks -----------------------------------------------------------------------------


def test_a_source_an_hour_ahead_does_not_make_another_late() -> None:
    reg = SeriesRegistry()
    a, b = reg.index_of("cpu", {"host": "a"}), reg.index_of("cpu", {"host": "b"})
    eng = WindowEngine(reg, width=10, allowed_lateness=5)
    sa, sb = eng.source_index("a"), eng.source_index("b")
    eng.ingest(cols([a, a], [1000.0, 4600.0]), sa)  # a's clock jumps an hour ahead (no processing time given)
    assert len(eng.advance()) == 1  # a's window [1000, 1010) closes on a's watermark
    assert eng.ingest(cols([b, b, b], [1001.0, 1009.0, 1012.0]), sb).tolist() == [0, 0, 0]  # none late
    assert len(eng.advance()) == 0  # b's watermark 1007: b's [1000, 1010) still open
    eng.ingest(cols([b], [1016.0]), sb)
    closed = eng.advance()
    assert (closed.series.tolist(), closed.start.tolist(), closed.count.tolist()) == ([b], [1000.0], [2])
    assert eng.watermark(sa) == 4595.0 and eng.watermark(sb) == 1011.0


def test_one_far_future_sample_no_longer_blinds_the_partition() -> None:
    """The issue's case: one sample a year ahead made every later sample of the partition late (57/57)."""
    step = WindowStep("wk.samples", 10.0, 5.0)
    t = NOW - 100
    msgs = [(0, b"skewed", batch("skewed", [NOW + 365 * 86400]))]
    msgs += [(1 + i, f"h{i % 3}".encode(), batch(f"h{i % 3}", [t + i])) for i in range(57)]
    out = step.process_many(0, msgs, NOW)
    dead = letters(out)
    assert [d.reason.split(":")[0] for d in dead] == ["future"]
    assert "'skewed'" in dead[0].reason and dead[0].offset == 0
    assert out.rejected == {"future": 1} and step.rejected == {"future": 1}
    eng = step.engines[0]
    assert eng.source_future[eng.source_index("skewed")] == 1 and eng.rejected[Reject.LATE] == 0
    got = windows(out)
    assert got and all(host.startswith("h") for host, _, _ in got)  # the normal sources' windows close


def test_future_is_measured_from_each_message_processing_time() -> None:
    step = WindowStep("t", 10.0, 5.0, WindowLimits(max_future=600.0))
    msgs = [(0, b"a", batch("a", [NOW + 599.0])), (1, b"a", batch("a", [NOW + 601.0])),
            (2, b"a", batch("a", [NOW + 601.0]))]
    out = step.process_many(0, msgs, NOW, times=[NOW, NOW, NOW + 2.0])
    assert [(d.offset, d.reason.split(":")[0]) for d in letters(out)] == [(1, "future")]


# -- idle sources --------------------------------------------------------------------------------------


def test_an_idle_source_is_closed_by_the_processing_time_of_other_messages() -> None:
    step = WindowStep("t", 10.0, 5.0, WindowLimits(idle_timeout=30.0))
    out = step.process_many(0, [(0, b"quiet", batch("quiet", [NOW - 3.0, NOW - 1.0])),
                                (1, b"busy", batch("busy", [NOW]))], NOW, times=[NOW, NOW])
    assert windows(out) == []  # its watermark NOW-6 closes nothing
    out = step.process_many(0, [(2, b"busy", batch("busy", [NOW + 20.0]))], NOW, times=[NOW + 20.0])
    assert windows(out) == [("busy", NOW, 1)]  # by busy's own watermark; quiet for 20 s < 30 s
    out = step.process_many(0, [(3, b"busy", batch("busy", [NOW + 30.0]))], NOW, times=[NOW + 30.0])
    assert windows(out) == [("quiet", math.floor((NOW - 3.0) / 10) * 10, 2)]
    # its later samples for the closed window are late, newer ones are applied
    out = step.process_many(0, [(4, b"quiet", batch("quiet", [NOW - 2.0, NOW + 31.0]))], NOW, times=[NOW + 31.0])
    assert [d.reason.split(":")[0] for d in letters(out)] == ["late"]


def test_a_writer_whose_clock_is_an_hour_ahead_makes_no_one_idle() -> None:
    """Processing time is each message's Kafka timestamp, i.e. its writer's clock: a producer on a host an
    hour ahead writes timestamps an hour ahead. It moves the processing clock only as far as its own clock
    moved since its previous message, so the others' windows stay open; a source back after a pause moves
    it by its pause."""
    step = WindowStep("t", 10.0, 5.0, WindowLimits(idle_timeout=30.0))
    msgs = [(0, b"a", batch("a", [NOW - 3.0])), (1, b"ahead", batch("ahead", [NOW + 3600.0])),
            (2, b"ahead", batch("ahead", [NOW + 3601.0])), (3, b"a", batch("a", [NOW - 2.0]))]
    out = step.process_many(0, msgs, NOW, times=[NOW, NOW + 3600.0, NOW + 3601.0, NOW + 1.0])
    assert out.deadletters == [] and windows(out) == []  # nothing late, nothing closed as idle
    assert step.engines[0].proc_time == NOW + 1.0
    back = step.process_many(0, [(4, b"ahead", batch("ahead", [NOW + 3700.0]))], NOW, times=[NOW + 3700.0])
    assert step.engines[0].proc_time == NOW + 100.0 and windows(back) == [
        ("a", math.floor((NOW - 3.0) / 10) * 10, 2),  # "a" silent for 99 s of the processing clock
        ("ahead", NOW + 3600.0, 2)]  # by its own watermark


def test_a_quiet_partition_is_closed_by_a_tick() -> None:
    step = WindowStep("t", 10.0, 5.0, WindowLimits(idle_timeout=25.0))
    step.process_many(0, [(0, b"a", batch("a", [NOW - 3.0])), (1, b"b", batch("b", [NOW - 2.0]))], NOW,
                      times=[NOW - 1.0, NOW])
    out = step.tick(0)
    assert sorted(windows(out)) == [("a", math.floor((NOW - 3.0) / 10) * 10, 1),
                                    ("b", math.floor((NOW - 2.0) / 10) * 10, 1)]
    assert out.tick_after == 1 and out.first_seq == 1 and step.progress[0].seq == 2
    assert step.engines[0].proc_time == NOW - 1.0 + 25.0  # the clock moved to when both were idle
    assert step.tick(0).records == []  # nothing open: nothing to do
    assert step.idle_timeout == 25.0 and WindowStep("t", 10.0, 5.0).idle_timeout == 25.0


def test_a_forced_tick_in_a_replay_closes_the_same_windows_as_the_live_one() -> None:
    msgs = [(0, b"a", batch("a", [NOW - 3.0])), (1, b"b", batch("b", [NOW - 12.0, NOW - 2.0])),
            (3, b"a", batch("a", [NOW + 40.0]))]
    times = [NOW, NOW, NOW + 50]
    live = WindowStep("t", 10.0, 5.0, WindowLimits(idle_timeout=25.0))
    first = live.process_many(0, msgs[:2], NOW, times=times[:2])
    snap = live.snapshot(0)
    tick = live.tick(0)
    rest = live.process_many(0, msgs[2:], NOW, times=times[2:])
    replay = WindowStep("t", 10.0, 5.0, WindowLimits(idle_timeout=25.0))
    replay.restore(0, snap)
    again = replay.tick(0)
    rest_again = replay.process_many(0, msgs[2:], NOW, times=times[2:])
    assert windows(first) == [("b", math.floor((NOW - 12.0) / 10) * 10, 1)]
    assert (again.records, again.first_seq) == (tick.records, tick.first_seq) and len(tick.records) == 2
    assert (rest_again.records, rest_again.first_seq) == (rest.records, rest.first_seq)


# -- impossible numbers --------------------------------------------------------------------------------


def test_impossible_times_and_values_are_dead_lettered_and_the_rest_of_the_fetch_goes_on() -> None:
    step = WindowStep("t", 10.0, 5.0)
    good = [NOW - 30.0 + i for i in range(30)]
    msgs = [
        (0, b"a", batch("a", good[:10])),
        (1, b"a", batch("a", [good[10], 1e300, good[11]], [1.0, 1.0, 1.0])),  # the OverflowError
        (2, b"a", batch("a", [-1e300, good[12]])),
        (3, b"a", batch("a", [good[13], good[14]], [1e308, 1e308])),  # summed to inf, lost in the sink
        (4, b"a", orjson.dumps({"v": 1, "name": "one", "labels": {"host": "a"}, "ts": 1e300, "value": 1.0})),
        (5, b"a", batch("a", good[15:], [2.0] * 15)),
    ]
    out = step.process_many(0, msgs, NOW)
    reasons = [(d.offset, d.reason.split(":")[0]) for d in letters(out)]
    assert reasons == [(1, "bad_timestamp"), (2, "bad_timestamp"), (3, "bad_value"), (4, "bad_timestamp")]
    shown = orjson.loads(base64.b64decode(letters(out)[0].original))
    assert shown["series"][0]["ts"] == [1e300] and shown["source"] == "a"
    assert out.rejected == {"bad_timestamp": 3, "bad_value": 2}
    assert out.dead == {"bad_timestamp": 3, "bad_value": 1}  # dead letters: one per message and reason
    models = [decode(v, WindowAggregate) for _, v in out.records]
    assert sum(m.count for m in models) + step.engines[0].open_windows > 0
    assert all(math.isfinite(m.sum) for m in models)
    data = step.snapshot(0)  # snapshots never fail
    again = WindowStep("t", 10.0, 5.0)
    again.restore(0, data)
    assert again.snapshot(0) == data
    total = sum(m.count for m in models) + sum(
        m.count for m in (decode(v, WindowAggregate) for _, v in again.process_many(
            0, [(6, b"a", batch("a", [NOW + 100.0]))], NOW).records) if m.start < NOW)
    assert total == 10 + 2 + 1 + 15  # every good point in a window, once


def test_engine_refuses_nan_and_infinite_times_and_values_per_sample() -> None:
    reg = SeriesRegistry()
    s = reg.index_of("m", {})
    eng = WindowEngine(reg)
    verdict = eng.ingest(cols([s] * 7, [100.0, math.nan, math.inf, -math.inf, 101.0, 102.0, 103.0],
                              [1.0, 1.0, 1.0, 1.0, math.nan, math.inf, -1e301]))
    assert verdict.tolist() == [0, 3, 3, 3, 4, 4, 4]
    assert eng.ingest_sample(s, math.nan, 1.0, False) == Reject.BAD_TIMESTAMP
    assert eng.ingest_sample(s, 104.0, math.inf, False) == Reject.BAD_VALUE
    closed = eng.flush()
    assert closed.count.tolist() == [1] and eng.rejected[Reject.BAD_TIMESTAMP] == 4


# -- bounded state -------------------------------------------------------------------------------------


def test_new_series_beyond_the_limit_are_dead_lettered_by_name() -> None:
    step = WindowStep("t", 10.0, 5.0, WindowLimits(max_series=3))
    msg = orjson.dumps({"v": 1, "source": "a", "series": [
        {"name": "m", "labels": {"i": str(i)}, "ts": [NOW - 20.0], "values": [1.0]} for i in range(5)]})
    out = step.process_many(0, [(0, b"a", msg)], NOW)
    [dead] = letters(out)
    assert dead.reason.startswith("series_limit: 2 of 5 samples") and "max_series = 3" in dead.reason
    refused = orjson.loads(base64.b64decode(dead.original))["series"]
    assert [b["labels"] for b in refused] == [{"i": "3"}, {"i": "4"}]
    assert len(step.registry) == 3 and step.registry.refused_total == 2


def test_idle_series_are_forgotten_and_their_room_reused() -> None:
    lim = WindowLimits(idle_timeout=20.0, max_series=2, series_idle=100.0)
    step = WindowStep("t", 10.0, 5.0, lim)
    one = orjson.dumps({"v": 1, "source": "a", "series": [{"name": "old", "ts": [NOW - 20.0], "values": [1.0]}]})
    step.process_many(0, [(0, b"a", one), (1, b"a", batch("a", [NOW - 20.0]))], NOW)
    assert len(step.registry) == 2
    step.process_many(0, [(2, b"a", batch("a", [NOW + 200.0 + i])) for i in range(3)], NOW, times=[NOW + 200.0] * 3)
    assert step.release_series() == 0  # "old" is idle, but its window was open at the check
    # checked again a quarter of series_idle later: "old" has no sample for 230 s > 100 s, no open window
    step.process_many(0, [(5, b"a", batch("a", [NOW + 230.0]))], NOW, times=[NOW + 230.0])
    assert step.release_series() == 1
    new = orjson.dumps({"v": 1, "source": "a", "series": [{"name": "new", "ts": [NOW + 233.0], "values": [1.0]}]})
    out = step.process_many(0, [(6, b"a", new)], NOW, times=[NOW + 233.0])
    assert out.deadletters == [] and len(step.registry) == 2
    assert step.registry.find("old", {}) is None and step.registry.find("new", {}) is not None
    data = step.snapshot(0)
    again = WindowStep("t", 10.0, 5.0, lim)
    again.restore(0, data)
    assert again.snapshot(0) == data


# -- whatever the interleaving and the cuts ------------------------------------------------------------


def _source_messages(src: int, n: int, seed: int) -> list[bytes]:
    """Source `src`'s messages: its own 3 series, event time rising with jitter, some late points."""
    rng = np.random.default_rng(seed)
    t = NOW - 1000.0 + 37.0 * src
    out = []
    for _ in range(n):
        t += float(rng.uniform(0.5, 12.0))
        blocks = [{"name": "m", "labels": {"s": str(k)}, "kind": "counter" if k == 0 else "gauge",
                   "ts": [t - float(rng.uniform(0, 14.0)), t], "values": [float(rng.integers(0, 50)), 60.0]}
                  for k in range(3)]
        out.append(orjson.dumps({"v": 1, "source": f"h{src}", "labels": {"host": f"h{src}"}, "series": blocks}))
    return out


def _by_source(outs: list[StepOutput]) -> dict[str, tuple[list[object], list[str]]]:
    got: dict[str, tuple[list[object], list[str]]] = {}
    for o in outs:
        for _, v in o.records:
            rec = orjson.loads(v)
            got.setdefault(rec["labels"]["host"], ([], []))[0].append(
                (rec["labels"]["s"], rec["start"], rec["count"], rec["max"], rec["increase"]))
        for k, v in o.deadletters:
            got.setdefault(k.decode(), ([], []))[1].append(decode(v, DeadLetter).reason.split(":")[0])
    return got


@settings(max_examples=40, deadline=None)
@given(order=st.lists(st.integers(0, 3), min_size=4, max_size=60), seed=st.integers(0, 10_000))
def test_each_source_gets_the_windows_it_would_get_alone(order: list[int], seed: int) -> None:
    per = {src: _source_messages(src, order.count(src), seed + src) for src in set(order)}
    taken = dict.fromkeys(per, 0)
    msgs = []
    for i, src in enumerate(order):
        msgs.append((i, f"h{src}".encode(), per[src][taken[src]]))
        taken[src] += 1
    step = WindowStep("t", 10.0, 5.0, WindowLimits(idle_timeout=1e9))
    together = _by_source([step.process_many(0, [m], NOW) for m in msgs] + [_flush(step)])
    for src, own in per.items():
        alone = WindowStep("t", 10.0, 5.0, WindowLimits(idle_timeout=1e9))
        outs = [alone.process_many(0, [(i, f"h{src}".encode(), raw)], NOW) for i, raw in enumerate(own)]
        assert together.get(f"h{src}") == _by_source([*outs, _flush(alone)]).get(f"h{src}")


def _flush(step: WindowStep) -> StepOutput:
    out = StepOutput()
    out.records = [(b"", orjson.dumps(r)) for r in aggregate_records(step.engines[0].flush(), step.registry)]
    return out


def _mixed() -> tuple[list[tuple[int, bytes | None, bytes]], list[float]]:
    """Four sources interleaved; h3 runs an hour ahead; h2 stops half way (closed as idle); bad points."""
    streams = {src: _source_messages(src, 40, 100 + src) for src in range(3)}
    msgs, times = [], []
    for i in range(40):
        for src in range(3):
            if src == 2 and i >= 20:
                continue
            msgs.append(streams[src][i])
            times.append(NOW + 6.0 * i)
        if i % 5 == 0:
            msgs.append(batch("h3", [NOW + 3600.0 + i, NOW + 3601.0 + i]))
            times.append(NOW + 6.0 * i)
        if i % 9 == 4:
            msgs.append(batch("h1", [1e300, NOW - 1000.0 + 12 * i], [1.0, 1e305]))
            times.append(NOW + 6.0 * i)
    keyed = [(i, orjson.loads(raw)["source"].encode(), raw) for i, raw in enumerate(msgs)]
    return keyed, times


def streams_h2_last(msgs: list[tuple[int, bytes | None, bytes]]) -> bytes:
    return [raw for _, key, raw in msgs if key == b"h2"][-1]


def _cut(step: WindowStep, msgs: list[tuple[int, bytes | None, bytes]], times: list[float],
         cuts: list[int]) -> list[StepOutput]:
    return [step.process_many(0, msgs[a:b], NOW, times=times[a:b]) for a, b in itertools.pairwise(cuts) if b > a]


def _sequence(outs: list[StepOutput]) -> tuple[list[tuple[int, bytes]], list[tuple[int, str]]]:
    aggs = [(o.first_seq + i, v) for o in outs for i, (_, v) in enumerate(o.records)]
    dead = [(d.offset, d.reason) for o in outs for d in letters(o)]
    return aggs, dead


@pytest.mark.parametrize("size", [1, 3, 17, 1000])
def test_several_sources_give_the_same_sequence_however_the_input_is_cut(size: int) -> None:
    msgs, times = _mixed()
    lim = WindowLimits(idle_timeout=30.0)
    step = WindowStep("t", 10.0, 5.0, lim)
    one = _sequence(_cut(step, msgs, times, list(range(len(msgs) + 1))))
    many = _sequence(_cut(WindowStep("t", 10.0, 5.0, lim), msgs, times, [*range(0, len(msgs), size), len(msgs)]))
    reasons = {r.split(":")[0] for _, r in one[1]}
    assert reasons == {"future", "bad_timestamp", "bad_value", "late"} and len(one[0]) > 100
    keys = [(r["labels"]["host"], r["labels"]["s"], r["start"]) for r in (orjson.loads(v) for _, v in one[0])]
    assert len(keys) == len(set(keys))  # every window once
    h2 = {start for host, _, start in keys if host == "h2"}
    last_h2 = max(max(b["ts"]) for b in orjson.loads(streams_h2_last(msgs))["series"])
    assert max(h2) == math.floor(last_h2 / 10) * 10  # h2 stopped: its last windows closed as idle
    assert many == one


def test_several_sources_resume_from_a_snapshot_to_the_same_sequence() -> None:
    msgs, times = _mixed()
    lim = WindowLimits(idle_timeout=30.0)
    whole = _sequence(_cut(WindowStep("t", 10.0, 5.0, lim), msgs, times, [0, len(msgs)]))
    first = WindowStep("t", 10.0, 5.0, lim)
    before = _cut(first, msgs, times, [0, 50, 71])
    resumed = WindowStep("t", 10.0, 5.0, lim)
    resumed.restore(0, first.snapshot(0))
    after = _cut(resumed, msgs, times, [71, 72, 100, len(msgs)])
    assert _sequence(before + after) == whole


def test_a_version_1_snapshot_still_restores() -> None:
    """A snapshot written before per-source watermarks (header v 1): its windows close on the old
    partition watermark, under the source ""."""
    reg = SeriesRegistry()
    s = reg.index_of("cpu", {"host": "a"})
    eng = WindowEngine(reg)
    eng.ingest(cols([s, s], [100.0, 111.0]), eng.source_index(""))
    eng.advance()
    v2 = eng.snapshot()
    framed = unframe(v2)
    head = framed.head
    arrays = {name: (dtype, n) for name, dtype, n in head["arrays"]}
    assert arrays["_prev_ts"][1] == 1
    # The v1 layout: the same slot arrays, then prev_series/prev_val/prev_ts, and a partition watermark.
    body = v2[framed.body_at:]
    slot_bytes = sum(np.dtype(d).itemsize * n for name, (d, n) in arrays.items()
                     if name in (*WindowEngine._SLOT_ARRAYS, "series", "bin_keys", "bin_counts"))
    v1_head = {"v": 1, "width": 10.0, "allowed_lateness": 5.0, "quantiles": head["quantiles"],
               "max_event_time": 111.0, "closed_before": 10, "late_samples": 0, "close_due": False,
               "series": head["series"],
               "arrays": [a for a in head["arrays"] if a[0] in (*WindowEngine._SLOT_ARRAYS, "series", "bin_keys",
                                                                 "bin_counts")]
               + [["prev_series", "<i8", 0], ["prev_val", "<f8", 0], ["prev_ts", "<f8", 0]]}
    raw = orjson.dumps(v1_head)  # in the unversioned framing of its time
    old = WindowEngine.restore(len(raw).to_bytes(4, "big") + raw + body[:slot_bytes], SeriesRegistry())
    assert old.open_windows == 2 and old.watermark(old.source_index("")) == 106.0
    a = old.source_index("a")
    assert old.ingest(cols([0], [95.0]), a, now=1000.0).tolist() == [Reject.LATE]  # the v1 watermark holds
    assert old.ingest(cols([0], [125.0]), a, now=1000.0).tolist() == [0]  # into a window of "" still
    assert len(old.advance()) == 0
    # "" sends nothing: idle after idle_timeout (25 s), its windows close; "a" takes the series over
    assert old.ingest(cols([0, 0], [126.0, 131.0]), a, now=1025.0).tolist() == [Reject.LATE, 0]
    closed = old.advance()
    assert closed.start.tolist() == [100.0, 110.0, 120.0] and closed.count.tolist() == [1, 1, 1]
    old.ingest(cols([0], [150.0]), a, now=1026.0)
    assert old.advance().start.tolist() == [130.0]  # now on a's watermark


def test_a_message_without_a_key_is_the_batch_source_or_the_sample_host() -> None:
    step = WindowStep("t", 10.0, 5.0)
    single = orjson.dumps({"v": 1, "name": "cpu", "labels": {"instance": "db-1:9100"}, "ts": NOW + 3600, "value": 1.0})
    out = step.process_many(0, [(0, None, batch("web-1", [NOW + 3600])), (1, None, single)], NOW)
    assert ["'web-1'" in d.reason for d in letters(out)] == [True, False]
    assert "'db-1:9100'" in letters(out)[1].reason
    assert step.engines[0].source_names == ["web-1", "db-1:9100"]


def test_the_largest_accepted_values_give_a_window_the_sink_stores() -> None:
    """Values up to +-1e300 are accepted, and their window has only finite numbers (orjson would write an
    infinite sum as null, and the sink would dead-letter the window)."""
    from watchkeeper.sinks.clickhouse_row_checks import row_problem

    step = WindowStep("t", 10.0, 5.0)
    out = step.process_many(0, [(0, b"a", batch("a", [NOW - 30.0 + i for i in range(100)], [1e300] * 99 + [-1e300])),
                                (1, b"a", batch("a", [NOW + 100.0]))], NOW)
    assert out.deadletters == [] and len(out.records) == 10
    for _, raw in out.records:
        rec = orjson.loads(raw)
        assert row_problem("aggregates", rec) is None
        assert math.isfinite(rec["sum"]) and abs(rec["max"]) <= 1e300


def test_the_sink_stores_no_raw_point_outside_the_time_range() -> None:
    from watchkeeper.schemas import SampleBatch, SeriesBlock
    from watchkeeper.sinks.clickhouse_rows import samples_table

    b = SampleBatch(source="a", series=[SeriesBlock(name="m", ts=[1e300, NOW, 9.3e9, 0.0], values=[1, 2, 3, 4])])
    table = samples_table([b])
    assert table.column("value").to_pylist() == [2.0, 4.0]

"""Every input has a bound (issue 17): the Kafka key (a batch's `source`) is the sender's choice, so per-source
state must not grow with every source ever seen. Given many distinct sources that then go quiet, expect the
window engine and the rules step to hold only the live ones (structure sizes measured, not RSS), their
freed indexes reused by new sources; beyond `max_sources` a new source's samples refused (`source_limit`,
dead-lettered by the window step, counted by the rules step); and snapshots/marks that restore to the same
decisions (pruned sources included)."""

from __future__ import annotations

import math

import orjson

from watchkeeper.agents.rules_agent import export_rejected
from watchkeeper.agents.rules_ingest import Mark
from watchkeeper.agents.rules_step import RulesStep
from watchkeeper.agents.window_step import StepOutput, WindowLimits, WindowStep
from watchkeeper.core.checkpoint_frame import frame, unframe
from watchkeeper.core.source_clocks import SourceClocks
from watchkeeper.core.windows import WindowEngine
from watchkeeper.plumbing.self_metrics import RULES_SAMPLES_REJECTED
from watchkeeper.schemas import DeadLetter, WindowAggregate, decode

NOW = 1_800_000_000.0
IDLE = 25.0  # idle_timeout
FORGET = 100.0  # series_idle: sources (and series) idle this long are forgotten


def batch(source: str, ts: list[float]) -> bytes:
    return orjson.dumps({"v": 1, "source": source, "labels": {"host": source}, "series": [
        {"name": "cpu", "labels": {}, "kind": "gauge", "ts": ts, "values": [1.0] * len(ts)}]})


Message = tuple[str, float, float]  # (source, sample time, processing time)


def churn(first: int, n: int, at: float) -> list[Message]:
    """`n` sources (`s<first>`...) sending one sample each at processing time `at`."""
    return [(f"s{i}", at + 0.001 * (i - first), at) for i in range(first, first + n)]


def live(start: float, stop: float, every: float = 10.0) -> list[Message]:
    """One source that keeps sending: it moves the processing clock."""
    return [("live", t, t) for t in _range(start, stop, every)]


def _range(start: float, stop: float, every: float) -> list[float]:
    return [start + every * i for i in range(int((stop - start) / every) + 1)]


def new_step(max_sources: int = 1000) -> WindowStep:
    return WindowStep("samples", limits=WindowLimits(width=10.0, allowed_lateness=5.0, idle_timeout=IDLE,
                                                     series_idle=FORGET, max_sources=max_sources))


def run(step: WindowStep, messages: list[Message], offset: int = 0) -> list[StepOutput]:
    return [step.process_many(0, [(offset + i, src.encode(), batch(src, [ts]))], now, times=[now])
            for i, (src, ts, now) in enumerate(messages)]


def windows(outs: list[StepOutput]) -> list[tuple[str, float, int]]:
    return [(m.labels["host"], m.start, m.count)
            for o in outs for m in (decode(v, WindowAggregate) for _, v in o.records)]


def held(step: WindowStep) -> tuple[int, int, int, int]:
    """Sources held, source-name dict size, per-source list length, closed-bound list length."""
    eng = step.engine(0)
    return len(eng.src), len(eng.source_ids), len(eng.source_names), len(eng._src_cb)


# -- the window engine ---------------------------------------------------------------------------------------


def test_idle_sources_are_forgotten_and_their_indexes_reused() -> None:
    step = new_step()
    first = churn(0, 500, NOW) + live(NOW, NOW + 300)
    outs = run(step, first)
    # Every one of the 500 sources had its window closed (by idle time), then was forgotten.
    assert sorted(w for w in windows(outs) if w[0] != "live") == sorted((f"s{i}", NOW, 1) for i in range(500))
    assert held(step)[:2] == (1, 1)
    assert step.engine(0).sources_forgotten == 500
    assert step.release_series() == 500
    assert len(step.registry) == 1  # the live source's series only
    # A second wave of 500 new sources reuses the freed indexes: the lists do not grow past the peak.
    second = churn(1000, 500, NOW + 310) + live(NOW + 310, NOW + 600)
    outs = run(step, second, offset=len(first))
    assert len([w for w in windows(outs) if w[0] != "live"]) == 500
    assert held(step) == (1, 1, 501, 501)


def test_a_source_with_an_open_window_or_a_series_is_not_forgotten() -> None:
    """`quiet` stops sending but its series is taken over by nobody and it has an open window until its idle
    close; it is forgotten only after both are gone, never while the live source's message is read."""
    step = new_step()
    run(step, [("quiet", NOW, NOW), *live(NOW, NOW + 60)])
    assert "quiet" in step.engine(0).source_ids  # idle, window closed, but not idle for FORGET yet
    run(step, live(NOW + 70, NOW + 200), offset=100)
    assert "quiet" not in step.engine(0).source_ids


def test_beyond_max_sources_a_new_source_is_refused_and_dead_lettered() -> None:
    step = new_step(max_sources=3)
    outs = run(step, [("a", NOW, NOW), ("b", NOW, NOW), ("c", NOW, NOW)])
    refused = step.process_many(0, [(3, b"d", batch("d", [NOW, NOW + 1]))], NOW, times=[NOW])
    assert not any(o.deadletters for o in outs)
    assert refused.rejected["source_limit"] == 2 and refused.dead["source_limit"] == 1
    [letter] = [decode(v, DeadLetter) for _, v in refused.deadletters]
    assert letter.reason.startswith("source_limit: 2 of 2 samples of new source 'd' refused")
    assert "windows.max_sources = 3" in letter.reason
    assert step.rejected["source_limit"] == 2
    assert "d" not in step.engine(0).source_ids and held(step)[0] == 3
    # Once a, b and c are idle past the forgetting horizon, d is accepted (and held alone).
    run(step, [("a", t, t) for t in _range(NOW + 10, NOW + 200, 10)], offset=4)  # moves the clock; a stays
    later = step.process_many(0, [(100, b"d", batch("d", [NOW + 201]))], NOW + 201, times=[NOW + 201])
    assert not later.deadletters and sorted(step.engine(0).source_ids) == ["a", "d"]


def test_snapshot_round_trip_with_forgotten_sources_makes_the_same_decisions() -> None:
    """A restart at any point (snapshot, restore, go on) gives the same windows, dead letters and final
    snapshot as one run, forgotten sources (free indexes, and one reused) included."""
    messages = churn(0, 40, NOW) + live(NOW, NOW + 150) + churn(100, 10, NOW + 155) + live(NOW + 160, NOW + 400)
    one = new_step(max_sources=45)
    whole = run(one, messages)
    assert one.engine(0).sources_forgotten == 50
    head, still_open = unframe(one.engine(0).snapshot()).head, open_windows(one)
    assert still_open and None in one.engine(0).source_names  # something left to compare; a free index
    for cut in (40, 45, 55, 60, len(messages) - 5):
        first = new_step(max_sources=45)
        before = run(first, messages[:cut])
        second = new_step(max_sources=45)
        second.restore(0, first.snapshot(0))
        assert second.snapshot(0) == first.snapshot(0)
        after = run(second, messages[cut:], offset=cut)
        assert windows(before + after) == windows(whole)
        assert [d for o in before + after for d in o.dead.items()] == [d for o in whole for d in o.dead.items()]
        # Same sources (names, free indexes, clocks), same series; open windows the same (slot order aside).
        assert unframe(second.engine(0).snapshot()).head == head
        assert open_windows(second) == still_open


def open_windows(step: WindowStep) -> list[tuple[str, float, int]]:
    closed = step.engine(0).flush()
    return sorted((step.registry.labels[s]["host"], float(t), int(c))
                  for s, t, c in zip(closed.series.tolist(), closed.start, closed.count, strict=True))


def test_a_snapshot_without_free_indexes_restores() -> None:
    """A snapshot written before sources were forgotten has no null rows and no `max_sources`: it restores,
    with the default bound."""
    step = new_step()
    run(step, live(NOW, NOW + 30))

    data = step.engine(0).snapshot()
    framed = unframe(data)
    head = dict(framed.head)
    del head["max_sources"]
    old = frame(head, data[framed.body_at:])
    eng = WindowEngine.restore(old, step.registry)
    assert eng.max_sources == 100_000 and list(eng.source_ids) == ["live"]


def test_source_clocks_state_keeps_free_indexes() -> None:
    src = SourceClocks(idle_timeout=IDLE, max_future=600.0)
    for name in "abcd":
        src.index(name)
    src.forget(1)
    src.forget(2)
    other = SourceClocks(IDLE, 600.0)
    other.load(src.state(), None)
    assert other.names == ["a", None, None, "d"] and len(other) == 2
    assert other.index("e") == 1 and src.index("e") == 1  # the smallest free index, on both sides
    assert other.state() == src.state()


# -- the rules step -----------------------------------------------------------------------------------------


def rules_step(max_sources: int = 1000) -> RulesStep:
    def no_engine(*_: object) -> object:
        raise AssertionError("no engine needed here")

    step = RulesStep([], 4, no_engine, lateness=5.0, retention=600.0,  # type: ignore[arg-type]
                     max_future=600.0, idle_timeout=IDLE, series_idle=FORGET, max_sources=max_sources)
    step.start(0, Mark(0, -math.inf, -math.inf))
    step.seen_end(0, 0)
    return step


def feed(step: RulesStep, messages: list[Message], offset: int = 0) -> None:
    for i, (src, ts, now) in enumerate(messages):
        step.ingest(0, offset + i, src.encode(), batch(src, [ts]), now)


def test_rules_step_forgets_idle_sources() -> None:
    step = rules_step()
    feed(step, churn(0, 500, NOW) + live(NOW, NOW + 300))
    src = step.clocks[0].sources
    assert len(src) == 1 and list(src.ids) == ["live"] and step.sources_forgotten == 500
    feed(step, churn(1000, 500, NOW + 310) + live(NOW + 310, NOW + 600), offset=1000)
    assert len(src) == 1 and len(src.names) == 501  # freed indexes reused


def test_rules_step_source_limit_is_counted_and_exported() -> None:
    step = rules_step(max_sources=2)
    feed(step, [("a", NOW, NOW), ("b", NOW, NOW), ("c", NOW, NOW), ("c", NOW + 1, NOW + 1)])
    assert step.source_limit == 2 and step.samples == 2 and list(step.clocks[0].sources.ids) == ["a", "b"]
    feed(step, [("a", NOW + 700 * 3, NOW)], offset=4)  # far future
    exported: dict[str, int] = {}
    before = {r: RULES_SAMPLES_REJECTED.labels(r)._value.get() for r in ("future", "source_limit")}
    export_rejected(step, exported)
    export_rejected(step, exported)  # only what was counted since the last call
    assert RULES_SAMPLES_REJECTED.labels("source_limit")._value.get() - before["source_limit"] == 2
    assert RULES_SAMPLES_REJECTED.labels("future")._value.get() - before["future"] == 1
    assert exported == {"source_limit": 2, "future": 1}


def test_rules_step_replayed_from_a_mark_forgets_the_same_sources() -> None:
    """A restart replays the partition from a mark (whose state holds the free indexes and the next check's
    time): the same sources are held at the end, at the same indexes."""
    messages = churn(0, 40, NOW) + live(NOW, NOW + 300) + churn(100, 10, NOW + 305) + live(NOW + 310, NOW + 500)
    whole = rules_step()
    feed(whole, messages)
    assert whole.sources_forgotten == 50
    marks = [m for m in whole.clocks[0].marks if m.offset > 0]
    assert len(marks) >= 3
    for mark in marks:
        again = rules_step()
        again.clocks.clear()
        again.start(0, mark)
        again.seen_end(0, 0)
        feed(again, messages[mark.offset:], offset=mark.offset)
        assert again.clocks[0].state() == whole.clocks[0].state()
        assert again.clocks[0].wm == whole.clocks[0].wm

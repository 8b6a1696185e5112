"""Batching the window step (many messages per call, one close per call) changes nothing downstream: the
same aggregates with the same sequence numbers, and the same dead letters, however the input is cut; a
snapshot taken between batches resumes to the same output. Only the last bits of a sum (and a counter's
increase) may differ: samples are added in groups, and the groups depend on when they are applied (as
they did before batching, with snapshots taken every so many seconds)."""

from __future__ import annotations

import itertools

import numpy as np
import orjson
import pytest

from watchkeeper.agents.window_step import StepOutput, WindowStep


def _messages() -> list[tuple[int, bytes | None, bytes]]:
    """Batched and single-sample messages of 12 series over 200 s, slightly out of order, with late
    samples, counters with a reset, and bad messages."""
    rng = np.random.default_rng(11)
    out: list[bytes] = []
    for t in range(0, 200, 4):
        blocks = []
        for s in range(6):
            kind = "counter" if s % 3 == 0 else "gauge"
            ts = [float(t + x) + rng.uniform(0, 0.9) for x in range(4)]
            values = [float(v) for v in rng.lognormal(2, 1, 4).round(2)]
            if kind == "counter":
                values = sorted(values) if t != 100 else [0.5, 1.0, 2.0, 3.0]
            blocks.append({"name": "m_total" if kind == "counter" else "m", "labels": {"s": str(s)},
                           "kind": kind, "ts": ts, "values": values})
        out.append(orjson.dumps({"v": 1, "source": "h", "labels": {"host": "h"}, "series": blocks}))
        for s in range(6, 12):
            out.append(orjson.dumps({"v": 1, "name": "one", "labels": {"s": str(s)}, "ts": t + rng.uniform(0, 4),
                                     "value": float(rng.normal(10, 3)), "kind": "counter" if s == 6 else "gauge"}))
        if t % 40 == 20:
            out.append(orjson.dumps({"v": 1, "name": "one", "labels": {"s": "7"}, "ts": t - 30.0, "value": 1.0}))
            out.append(b'{"v":1,"name":"9bad","ts":1,"value":1}')
            out.append(orjson.dumps({"v": 1, "source": "h", "series": [
                {"name": "m", "labels": {"s": "1"}, "ts": [t - 40.0, t + 3.5], "values": [1.0, 2.0]}]}))
    return [(i, b"h", raw) for i, raw in enumerate(out)]


def _run(step: WindowStep, messages: list[tuple[int, bytes | None, bytes]], cuts: list[int]) -> list[StepOutput]:
    outs = []
    for a, b in itertools.pairwise(cuts):
        if b > a:
            outs.append(step.process_many(0, messages[a:b], 0.0))
    return outs


def _emitted(outs: list[StepOutput]) -> tuple[list[tuple[int, bytes, dict[str, object]]], list[object]]:
    aggs = []
    for o in outs:
        for i, (k, v) in enumerate(o.records):
            rec = orjson.loads(v)
            rec["sum"] = pytest.approx(rec["sum"], rel=1e-12)
            rec["increase"] = pytest.approx(rec["increase"], rel=1e-12)
            aggs.append((o.first_seq + i, k, rec))
    return aggs, [(k, orjson.loads(v)) for o in outs for k, v in o.deadletters]


@pytest.mark.parametrize("size", [2, 7, 50, 10_000])
def test_any_batching_gives_the_one_at_a_time_output(size: int) -> None:
    messages = _messages()
    one = _emitted(_run(WindowStep("t", 10.0, 5.0), messages, list(range(len(messages) + 1))))
    cuts = [*range(0, len(messages), size), len(messages)]
    many = _emitted(_run(WindowStep("t", 10.0, 5.0), messages, cuts))
    assert len(one[0]) > 100 and len(one[1]) >= 10  # windows closed, late and bad input dead-lettered
    assert [seq for seq, _, _ in one[0]] == list(range(1, len(one[0]) + 1))
    assert many == one


def test_snapshot_between_batches_resumes_to_the_same_output() -> None:
    messages = _messages()
    whole = _emitted(_run(WindowStep("t", 10.0, 5.0), messages, [0, 90, 200, len(messages)]))
    first = WindowStep("t", 10.0, 5.0)
    before = _run(first, messages, [0, 90, 130])
    resumed = WindowStep("t", 10.0, 5.0)
    resumed.restore(0, first.snapshot(0))
    assert resumed.progress[0].offset == 129
    after = _run(resumed, messages, [130, 131, 300, len(messages)])
    assert _emitted(before + after) == whole

"""Properties of the rules' partial stage over random streams (several sources, out-of-order and late
samples, processing times that jump): the records do not depend on how the input is cut into batches, and
a restart from any checkpoint makes exactly the records an uninterrupted run made after it."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.test_rules_partial_step import T0, Out, feed, new_step, samples
from watchkeeper.runtime.partition_state import Record

messages = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 20), st.integers(-15, 3), st.integers(0, 40),
                              st.booleans()), min_size=40, max_size=200)


def stream_of(drawn: list[tuple[int, int, int, int, bool]]) -> list[Record]:
    """(source, seconds the clock moves, jitter of the sample's time, write delay, up) per message."""
    recs: list[Record] = []
    now = T0
    for i, (src, step, jitter, delay, up) in enumerate(drawn):
        now += step
        name = f"s{src}"
        recs.append((i, name.encode(), samples(name, now + jitter, i, up=1.0 if up else 0.0), now + delay))
    return recs


def cut(records: list[Record], sizes: list[int]) -> list[list[Record]]:
    out, at = [], 0
    for n in sizes * (len(records) + 1):
        if at >= len(records):
            break
        out.append(records[at:at + n])
        at += n
    return out


def run(records: list[Record], sizes: list[int]) -> tuple[list[Out], list[bytes]]:
    step = new_step()
    made: list[Out] = []
    checkpoints = []
    for batch in cut(records, sizes):
        made += feed(step, 0, batch, len(batch))
        checkpoints.append(step.snapshot(0))
    return made, checkpoints


@settings(max_examples=40, deadline=None)  # a run takes ~0.1 s; no timing limit on a shared machine
@given(messages, st.lists(st.integers(1, 25), min_size=1, max_size=5))
def test_records_do_not_depend_on_batches(drawn: list[tuple[int, int, int, int, bool]], sizes: list[int]) -> None:
    records = stream_of(drawn)
    assert run(records, sizes)[0] == run(records, [1])[0]


@settings(max_examples=40, deadline=None)  # a run takes ~0.1 s; no timing limit on a shared machine
@given(messages, st.lists(st.integers(1, 25), min_size=1, max_size=5), st.data())
def test_a_restart_from_any_checkpoint_continues_the_run(drawn: list[tuple[int, int, int, int, bool]],
                                                         sizes: list[int], data: st.DataObject) -> None:
    records = stream_of(drawn)
    made, checkpoints = run(records, sizes)
    cp = checkpoints[data.draw(st.integers(0, len(checkpoints) - 1))]
    again = new_step()
    again.restore(0, cp)
    start, seq = again.progress[0].offset + 1, again.progress[0].seq
    assert feed(again, 0, records[start:], data.draw(st.integers(1, 30))) == made[seq:]

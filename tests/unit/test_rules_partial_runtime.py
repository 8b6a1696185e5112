"""The rules' partial stage on the partition runtime with the fake broker of test_partition_runtime (no
Kafka): given a samples partition with a stream and one that never gets a sample, a worker that dies
without releasing them halfway, and a next owner that resumes from the last checkpoints with other batch
sizes, expect on the partials output exactly what one uninterrupted step makes: the same records with
their `wk-wm` headers, numbered 1, 2, ..., and the empty partition's `empty: true` once."""

from __future__ import annotations

import asyncio
import itertools

import orjson

from tests.unit.test_partition_runtime import TOPIC, FakeBroker, FakeConsumer, FakeIO, Rec
from tests.unit.test_rules_partial_step import new_step, stream
from watchkeeper.agents.rules_partial_step import HEARTBEAT_KEY, WM_HEADER
from watchkeeper.runtime.exactly_once import headers_of, seq_of
from watchkeeper.runtime.partition_state import PartitionRuntime, RuntimeSettings

RECORDS = stream(0, 1500)


def worker(broker: FakeBroker, name: str, every_messages: int, batch: int) -> PartitionRuntime:
    settings = RuntimeSettings(every_messages=every_messages, every_seconds=1e9, batch_messages=batch,
                               idle_timeout=1.0)
    clock = itertools.count()  # a second passes at every look at the clock: quiet partitions get idle ticks
    rt = PartitionRuntime(TOPIC, new_step(), FakeIO(broker, name), settings,
                          monotonic=lambda: float(next(clock)), wall=lambda: 0.0)
    rt.attach_feed(FakeConsumer(broker))
    return rt


def uninterrupted() -> dict[int, list[tuple[bytes, bytes, list[tuple[str, bytes]]]]]:
    step = new_step()
    out = {}
    for p, records in ((0, RECORDS), (1, [])):
        step.restore(p, None)
        made = [step.process_records(p, records, 0.0), step.tick(p)]
        out[p] = [(k, v, [*headers_of(o.first_seq + i, o.tick_after), *h]) for o in made
                  for i, ((k, v), h) in enumerate(zip(o.records, o.headers, strict=True))]
    return out


def test_a_worker_dying_halfway_loses_and_doubles_no_partials_record() -> None:
    messages = [Rec(o, key, value, int(proc * 1000)) for o, key, value, proc in RECORDS]

    async def run() -> FakeBroker:
        broker = FakeBroker({0: 0, 1: 0})
        a = worker(broker, "a", every_messages=40, batch=17)
        a.assign([0, 1])
        await a.resume([0, 1])
        broker.input[0] = messages[:len(messages) // 2]
        while a.step.progress[0].offset < len(messages) // 2 - 1 or not broker.output[1]:
            await a.feed_once()
        assert broker.changelog[0] and broker.changelog[1]
        broker.input[0] = messages  # A dies here, its partitions not released
        b = worker(broker, "b", every_messages=100, batch=23)
        b.assign([0, 1])
        await b.resume([0, 1])  # replays from A's checkpoints to the end
        for _ in range(5):
            await b.feed_once()
        return broker

    broker = asyncio.run(run())
    want = uninterrupted()
    for p in (0, 1):
        assert broker.output[p] == [(k, v, h) for k, v, h in want[p]], p
        assert [seq_of(h) for _, _, h in broker.output[p]] == list(range(1, len(want[p]) + 1))
    assert len(want[0]) > 100 and all(any(n == WM_HEADER for n, _ in h) for _, _, h in broker.output[0])
    assert [(k, orjson.loads(v)) for k, v, _ in broker.output[1]] == [(HEARTBEAT_KEY, {"v": 1, "empty": True})]

"""The anomaly step on the partition runtime with the fake broker of test_partition_runtime (no Kafka):
given a level shift on one partition, a worker that dies without releasing it after the alert went pending
and fired, and a next owner that resumes from the last checkpoint with other batch sizes, expect on the
output exactly the pure core's transitions, each once, numbered 1, 2, 3."""

from __future__ import annotations

import asyncio

import numpy as np

from tests.unit.test_anomaly_agent_step import RULE_LIST, SHIFT, STEP, T0, N, aggregate, level_shift
from tests.unit.test_partition_runtime import TOPIC, FakeBroker, FakeConsumer, FakeIO, Rec
from watchkeeper.agents.anomaly_step import AnomalyStep
from watchkeeper.core.anomaly_scoring import AnomalyScorer
from watchkeeper.runtime.checkpoint import Checkpoint
from watchkeeper.runtime.exactly_once import seq_of
from watchkeeper.runtime.partition_state import PartitionRuntime, RuntimeSettings
from watchkeeper.schemas import AlertEvent, decode


def worker(broker: FakeBroker, name: str, every_messages: int, batch: int) -> PartitionRuntime:
    settings = RuntimeSettings(every_messages=every_messages, every_seconds=1e9, batch_messages=batch)
    rt = PartitionRuntime(TOPIC, AnomalyStep(RULE_LIST, "aggregates"), FakeIO(broker, name), settings,
                          monotonic=lambda: 0.0, wall=lambda: 0.0)
    rt.attach_feed(FakeConsumer(broker))
    return rt


def test_a_worker_dying_after_pending_and_firing_loses_and_doubles_no_transition() -> None:
    x = level_shift()
    labels = {"job": "api"}
    messages = [Rec(i, None, aggregate(labels, i, float(x[i])), 1_000_000 + i) for i in range(N)]

    async def run() -> FakeBroker:
        broker = FakeBroker({0: 0})
        a = worker(broker, "a", every_messages=300, batch=64)
        a.assign([0])
        await a.resume([0])
        broker.input[0] = messages[:SHIFT + 20]
        while a.step.progress[0].offset < SHIFT + 19:
            await a.feed_once()
        assert [decode(v, AlertEvent).state for _, v, _ in broker.output[0]] == ["pending", "firing"]
        assert Checkpoint.decode(broker.changelog[0][-1]).offset < SHIFT  # the checkpoint predates both
        broker.input[0] = messages  # A dies here, its partition not released
        b = worker(broker, "b", every_messages=1000, batch=37)
        b.assign([0])
        await b.resume([0])  # replays from A's checkpoint to the end
        return broker

    broker = asyncio.run(run())
    pure = AnomalyScorer().score(RULE_LIST[0], "s", labels, T0 + STEP * np.arange(N), x).events
    events = [decode(v, AlertEvent) for _, v, _ in broker.output[0]]
    assert [(e.state, e.event_time) for e in events] == [(e.state, e.event_time) for e in pure]
    assert [e.state for e in events] == ["pending", "firing", "resolved"]
    assert [seq_of(h) for _, _, h in broker.output[0]] == [1, 2, 3]

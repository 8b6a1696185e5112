"""Known tansu 0.6.0 defects (DESIGN.md): these tests fail when the broker no longer has them, so a fixed
broker is noticed and the workarounds can be removed. The worker makes the same check at start
(`runtime.broker_defects.probe`) and switches each workaround on only where the broker has the defect."""

from __future__ import annotations

import asyncio
import uuid

from watchkeeper.plumbing.topics import ensure_topics
from watchkeeper.runtime.broker_defects import list_offsets_after_one_batch, probe


async def _end_offset_after_one_batch_of(bootstrap: str, n: int) -> tuple[int, int]:
    topic = f"defect-{uuid.uuid4().hex[:8]}"
    await ensure_topics(bootstrap, {topic: 1})
    return await list_offsets_after_one_batch(bootstrap, topic, n)


def test_tansu_list_offsets_latest_is_the_last_batch_base_plus_one(broker: str) -> None:
    """ListOffsets(latest) after one 5-record batch: Kafka says 5, tansu 0.6.0 says 1. The fetch's high
    watermark is right, which is the workaround Watchkeeper uses."""
    end, high_watermark = asyncio.run(_end_offset_after_one_batch_of(broker, 5))
    assert high_watermark == 5
    assert end == 1, (
        f"ListOffsets(latest) returned {end} (Kafka's answer is 5): the broker no longer has tansu's "
        "ListOffsets defect; remove the workarounds listed in DESIGN.md and this test"
    )


def test_the_worker_probe_finds_the_defect_and_switches_its_workaround_on(broker: str) -> None:
    """What a worker sees at start on this broker: the defect, so checkpoints are flushed alone."""
    defects = asyncio.run(probe(broker, f"probe-{uuid.uuid4().hex[:8]}"))
    assert defects.list_offsets_latest, "the broker no longer has the ListOffsets defect: see the test above"

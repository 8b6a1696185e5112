"""The notification sink driven step by step (take alerts, flush, deliver) at times the test chooses, with
its real SQLite state, a real broker and a local receiver: what the bound and replay tests share."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import aiohttp

from watchkeeper.commands.sink import notify_sink_settings
from watchkeeper.plumbing import kafka_clients
from watchkeeper.plumbing.config import Config
from watchkeeper.schemas.alerts import AlertEvent
from watchkeeper.sinks.notify_sink import NotifySink, open_sink


async def started(cfg: Config, session: aiohttp.ClientSession) -> NotifySink:
    """The sink as `run` sets it up, without its loops: the test calls its steps."""
    sink = open_sink(notify_sink_settings(cfg))
    assert sink is not None
    sink.producer = kafka_clients.producer(cfg.kafka)
    await sink.producer.start()
    sink.open_channels(session)
    sink.wakeup = asyncio.Event()
    return sink


async def stopped(sink: NotifySink) -> None:
    if sink.tasks:
        await asyncio.wait(sink.tasks)
    await sink.producer.stop()
    sink.store.close()
    sink.silences.close()
    sink.acks.close()
    sink.escalations.close()


async def step(sink: NotifySink, now: float, events: Sequence[AlertEvent] = ()) -> None:
    """One turn of the sink at `now`: take the alerts, flush due groups, send what is due."""
    if events:
        sink._take(list(events), now)
    sink._flush(now)
    for id, attempts, created, note in sink.store.due(now, set(), 1000):
        await sink._attempt(id, attempts, created, note)

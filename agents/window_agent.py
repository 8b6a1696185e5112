"""The window agent: `wk.samples` -> closed windows on `wk.aggregates`, bad and late input on
`wk.deadletter`. The logic is in `agents.window_step` and `core.windows`."""

from __future__ import annotations

import logging
import time
from typing import Any

import faust

from agents.window_step import WindowStep
from watchkeeper.config import Config

log = logging.getLogger("watchkeeper.windows")


def register(app: faust.App, cfg: Config) -> None:
    t = cfg.kafka.topics
    raw: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw",
                           "value_serializer": "raw"}
    samples = app.topic(t.samples, partitions=8, **raw)
    aggregates = app.topic(t.aggregates, partitions=8, **raw)
    deadletter = app.topic(t.deadletter, partitions=1, **raw)
    step = WindowStep(t.samples, cfg.windows.width, cfg.windows.allowed_lateness)
    app.window_step = step  # type: ignore[attr-defined]

    @app.agent(samples, name="watchkeeper.windows")
    async def windows(stream: faust.StreamT) -> None:
        async for event in stream.events():
            msg = event.message
            try:
                out = step.process(msg.partition, msg.offset, msg.key, msg.value, time.time())
            except Exception as exc:  # a worker never dies on bad data: dead-letter and go on
                log.exception("window step failed at %s[%d]@%d", msg.topic, msg.partition, msg.offset)
                out = step.failed(msg.partition, msg.offset, msg.key, msg.value or b"", exc, time.time())
            for key, value in out.aggregates:
                await aggregates.send(key=key, value=value)
            for dl_key, dl_value in out.deadletters:
                await deadletter.send(key=dl_key, value=dl_value)


"""The notification sink's bounds with the real sink: its SQLite state, a real broker (tansu) for the
dead-letter and delivery-log topics, a local webhook receiver. Time is an argument: the test drives the
sink's steps (take alerts, flush, deliver, maintain) at the times it chooses, days apart, without waiting.

Given alerts delivered, expect the finished rows and the log entries of resolved groups pruned once
`notify.retention_seconds` has passed (and counted in /metrics), a firing group's entry kept, so a replay
after a restart notifies nothing; given a full outbox, expect the newest notification refused to the
dead-letter topic, recorded and counted, and delivered at its group's next flush, a resolution that
ended its group included."""

from __future__ import annotations

import asyncio
import base64
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import orjson
import pytest

from tests.integration.kafka_io import consume_until
from tests.integration.notify_peers import RecordingServer
from tests.integration.notify_stepping import started, step, stopped
from watchkeeper.plumbing.config import Config
from watchkeeper.plumbing.self_metrics import REGISTRY, exposition
from watchkeeper.schemas.alerts import AlertEvent
from watchkeeper.sinks.notify_store import store_paths

# repeat_interval longer than the retention: only a kept log entry stops a firing group notifying early
AM_CONFIG = """
route:
  receiver: team
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 200h
receivers:
  - name: team
    webhook_configs: [{{url: "{url}/hook"}}]
"""
HOUR = 3600.0
RETENTION = 120 * HOUR  # the default


def alert(name: str, state: str, t: float) -> AlertEvent:
    return AlertEvent(fingerprint=f"{abs(hash(name)) % 16**16:016x}", rule=name, state=state,
                      labels={"alertname": name, "severity": "high"}, starts_at=t,
                      ends_at=t + 1 if state == "resolved" else None, event_time=t)


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    srv = RecordingServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def cfg(wk_config: Config, tmp_path: Path, server: RecordingServer) -> Config:
    (tmp_path / "alertmanager.yml").write_text(AM_CONFIG.format(url=server.url))
    wk_config.notify.alertmanager_config = str(tmp_path / "alertmanager.yml")
    return wk_config


def pruned(table: str) -> float:
    return REGISTRY.get_sample_value("watchkeeper_notify_pruned_rows_total", {"table": table}) or 0.0


def rows(cfg: Config, sql: str) -> list[tuple[object, ...]]:
    db = sqlite3.connect(store_paths(cfg.data_path)[0])
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def test_retention_prunes_what_is_finished_and_a_replay_notifies_nothing(cfg: Config,
                                                                          server: RecordingServer) -> None:
    t0 = time.time()
    outbox0, nflog0 = pruned("outbox"), pruned("nflog")

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            sink = await started(cfg, session)
            await step(sink, t0, [alert("DiskFull", "firing", t0), alert("CpuHot", "firing", t0)])
            await step(sink, t0 + 5, [alert("CpuHot", "resolved", t0 + 5)])
            assert len(server.requests) == 3  # two firing, one resolved
            assert rows(cfg, "SELECT count(*), min(state), max(state) FROM outbox") == [(3, "acked", "acked")]

            sink.maintain(t0 + RETENTION - 60)  # within the retention: nothing goes
            assert (pruned("outbox"), pruned("nflog")) == (outbox0, nflog0)
            assert sink.prune.next_at == t0 + RETENTION  # the next round, a minute later
            sink.maintain(t0 + RETENTION + 100)
            assert pruned("outbox") - outbox0 == 3 and pruned("nflog") - nflog0 == 1
            assert rows(cfg, "SELECT count(*) FROM outbox") == [(0,)]
            # the resolved group's entry is gone, the firing group's stays (it stops an early repeat)
            assert rows(cfg, "SELECT group_key FROM nflog") == [('{}:{alertname="DiskFull"}',)]
            await stopped(sink)

            sink = await started(cfg, session)  # a restart, then the alerts topic replayed from an old offset
            sink.maintain(t0 + RETENTION + 150)  # a start prunes first: the group is rebuilt, its entry kept
            assert rows(cfg, "SELECT count(*) FROM nflog") == [(1,)]
            replay = [alert("DiskFull", "firing", t0), alert("CpuHot", "resolved", t0 + 5)]
            await step(sink, t0 + RETENTION + 200, replay)
            await step(sink, t0 + RETENTION + 300)
            assert len(server.requests) == 3  # notified nothing twice
            await stopped(sink)

    asyncio.run(scenario())
    text = exposition().decode()
    assert 'watchkeeper_notify_pruned_rows_total{table="outbox"}' in text  # on /metrics


def test_a_full_outbox_refuses_the_newest_to_the_dead_letter_topic_and_delivers_it_later(
        cfg: Config, server: RecordingServer) -> None:
    cfg.notify.outbox_max_pending = 2
    t0 = time.time()
    refused0 = REGISTRY.get_sample_value("watchkeeper_notify_outbox_refused_total",
                                         {"receiver": "team", "integration": "webhook[0]"}) or 0.0

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            sink = await started(cfg, session)
            sink._take([alert(n, "firing", t0) for n in ("A1", "A2", "A3")], t0)
            sink._flush(t0)  # three groups planned, room for two: A3's is refused
            assert sink.store.pending_count() == 2
            assert sink.store.log_entry("team", "webhook[0]", group_key='{}:{alertname="A3"}') is None
            await step(sink, t0)  # A1 and A2 delivered
            assert sorted(r.body["groupLabels"]["alertname"] for r in server.requests) == ["A1", "A2"]
            await step(sink, t0 + 1)  # A3's group flushes again (group_interval): room now
            assert sorted(r.body["groupLabels"]["alertname"] for r in server.requests) == ["A1", "A2", "A3"]

            sink._take([alert("B1", "firing", t0 + 2), alert("B2", "firing", t0 + 2)], t0 + 2)
            sink._flush(t0 + 2)  # two wait (not sent yet): the outbox is full again
            sink._take([alert("A1", "resolved", t0 + 3)], t0 + 3)
            sink._flush(t0 + 3)  # the flush that ends A1's group: its resolved notification is refused
            assert '{}:{alertname="A1"}' in sink.dispatcher.groups  # kept, with the resolved alert, to tell it
            await step(sink, t0 + 3)  # B1, B2 sent
            await step(sink, t0 + 4)  # A1's group flushes again: the resolution is told
            told = [(r.body["groupLabels"]["alertname"], r.body["status"]) for r in server.requests]
            assert told[3:] == [("B1", "firing"), ("B2", "firing"), ("A1", "resolved")]
            assert '{}:{alertname="A1"}' not in sink.dispatcher.groups and sink.store.known(alert("A1", "firing",
                                                                                              t0).fingerprint) is None
            await stopped(sink)

    asyncio.run(scenario())
    refused = REGISTRY.get_sample_value("watchkeeper_notify_outbox_refused_total",
                                        {"receiver": "team", "integration": "webhook[0]"})
    assert refused == refused0 + 2
    topics = cfg.kafka.topics
    dead = asyncio.run(consume_until(cfg.kafka.bootstrap, topics.deadletter, lambda rs: len(rs) >= 2))
    assert len(dead) == 2
    dead.sort(key=lambda r: orjson.loads(r.value)["time"])
    letter = orjson.loads(dead[0].value)
    assert "outbox full: 2 notifications waiting (notify.outbox_max_pending 2)" in letter["reason"]
    assert letter["topic"] == topics.notifications and letter["offset"] == -1
    original = orjson.loads(base64.b64decode(letter["original"]))
    assert original["group_key"] == '{}:{alertname="A3"}' and original["integration"] == "webhook[0]"
    assert orjson.loads(base64.b64decode(orjson.loads(dead[1].value)["original"]))["alerts"][0]["state"] == "resolved"
    recs = asyncio.run(consume_until(cfg.kafka.bootstrap, topics.notifications,
                                     lambda rs: sum(orjson.loads(r.value)["status"] == "sent" for r in rs) >= 6))
    failed = sorted((orjson.loads(r.value) for r in recs if orjson.loads(r.value)["status"] == "failed"),
                    key=lambda f: f["time"])
    assert [(f["group_key"], f["error"][:12]) for f in failed] == [('{}:{alertname="A3"}', "outbox full:"),
                                                                  ('{}:{alertname="A1"}', "outbox full:")]

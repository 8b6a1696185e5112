"""A replayed old alert event does not re-notify, with the real sink: its SQLite state, a real broker (tansu),
a local webhook receiver. Time is an argument: the test drives the sink's steps at the times it chooses.

Given a firing then its resolution flushed and sent, expect the old firing delivered again (a replay in a
later consumer batch, also after a restart) to be skipped and counted, so the receiver gets exactly two
requests (firing, resolved)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.integration.notify_peers import RecordingServer
from tests.integration.notify_stepping import started, step, stopped
from watchkeeper.plumbing.config import Config
from watchkeeper.plumbing.self_metrics import REGISTRY, exposition
from watchkeeper.schemas.alerts import AlertEvent

AM_CONFIG = """
route:
  receiver: team
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 4h
receivers:
  - name: team
    webhook_configs: [{{url: "{url}/hook"}}]
"""


def alert(state: str, t: float) -> AlertEvent:
    return AlertEvent(fingerprint="00000000000051a1", rule="DiskFull", state=state,
                      labels={"alertname": "DiskFull", "severity": "high"}, starts_at=t,
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


def stale(reason: str) -> float:
    return REGISTRY.get_sample_value("watchkeeper_notify_stale_events_total", {"reason": reason}) or 0.0


def statuses(server: RecordingServer) -> list[str]:
    return [r.body["status"] for r in server.requests]


def test_an_old_firing_replayed_after_its_resolution_was_sent_notifies_nothing(cfg: Config,
                                                                               server: RecordingServer) -> None:
    t0 = time.time()
    older0, dup0 = stale("older"), stale("duplicate")

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            sink = await started(cfg, session)
            await step(sink, t0, [alert("firing", t0)])
            await step(sink, t0 + 5, [alert("resolved", t0 + 5)])
            assert statuses(server) == ["firing", "resolved"]
            await step(sink, t0 + 10, [alert("firing", t0)])  # the probe: an old firing, later batch
            await step(sink, t0 + 20)
            assert statuses(server) == ["firing", "resolved"]
            assert stale("older") - older0 == 1
            await stopped(sink)

            sink = await started(cfg, session)  # a restart: what was applied is in the store
            await step(sink, t0 + 30, [alert("resolved", t0 + 5)])  # the same transition again
            await step(sink, t0 + 40)
            assert statuses(server) == ["firing", "resolved"]
            assert stale("duplicate") - dup0 == 1
            await stopped(sink)

    asyncio.run(scenario())
    assert "watchkeeper_notify_stale_events_total" in exposition().decode()

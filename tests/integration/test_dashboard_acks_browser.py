"""Acks and escalations on the dashboard page, in a real headless Chromium: given a firing alert that alice
acknowledged and its group at level 2 of a policy, expect "acknowledged by alice" beside the alert and the
escalation's line above the alerts; without the ack, an Ack button on the firing alert and "not acknowledged"."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web

from tests.integration.test_dashboard_browser import CHROMIUM, _chromium, _seed
from watchkeeper.commands.dashboard import dashboard_settings
from watchkeeper.core.notify.acks import Ack
from watchkeeper.core.notify.escalation import EscalationState
from watchkeeper.dashboard import create_dashboard_app
from watchkeeper.plumbing.broker import free_port
from watchkeeper.plumbing.config import Config
from watchkeeper.schemas.alerts import AlertEvent
from watchkeeper.sinks.ack_store import AckStore, ack_store_path
from watchkeeper.sinks.escalation_store import EscalationStore
from watchkeeper.sinks.notify_store import NotifyStore, store_paths

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium not installed (apt-get install chromium)")
LABELS = {"alertname": "DiskWillFillSoon", "host": "db-1", "mount": "/var", "severity": "critical"}


def _sink_state(cfg: Config, acked: bool) -> None:
    now = time.time()
    store = NotifyStore(store_paths(cfg.data_path)[0])
    store.put_alerts([AlertEvent(fingerprint="a1", rule="DiskWillFillSoon", state="firing", labels=LABELS,
                                 starts_at=now - 420, event_time=now - 420)])
    store.close()
    esc = EscalationStore(store_paths(cfg.data_path)[0])
    esc.put(EscalationState("k", "ops-tech-external", 2, 1_800_000_000.0, labels={"alertname": "DiskWillFillSoon"}))
    esc.close()
    if acked:
        acks = AckStore(ack_store_path(cfg.data_path))
        acks.add(Ack.of("ack1", now - 60, "alice", "growing the volume", fingerprint="a1"))
        acks.close()


async def _page(ch_dsn: str, tmp: Path, acked: bool) -> AsyncIterator[str]:
    _seed(ch_dsn, datetime.now(UTC))
    cfg = Config(data_dir=str(tmp / "data"))
    _sink_state(cfg, acked)
    runner = web.AppRunner(create_dashboard_app(dashboard_settings(cfg, ch_dsn)))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield (await _chromium("--dump-dom", f"http://127.0.0.1:{port}/")).decode()
    finally:
        await runner.cleanup()


async def test_an_acknowledged_alert_shows_who_and_why_and_its_escalation(ch_dsn: str, tmp_path: Path) -> None:
    async for dom in _page(ch_dsn, tmp_path, acked=True):
        assert "acknowledged by <b>alice</b>" in dom and "growing the volume" in dom
        assert "ops-tech-external {alertname=DiskWillFillSoon}: level 2 since 08:00 UTC, acknowledged by alice" in dom
        assert "ack-button" not in dom


async def test_an_unacknowledged_firing_alert_has_an_ack_button(ch_dsn: str, tmp_path: Path) -> None:
    async for dom in _page(ch_dsn, tmp_path, acked=False):
        assert 'data-fingerprint="a1"' in dom and 'class="ack-button">Ack</button>' in dom
        assert '<span class="fp" title="for watchkeeper ack">a1</span>' in dom  # what `watchkeeper ack` takes
        assert "level 2 since 08:00 UTC, not acknowledged" in dom

"""The dashboard's view of the silence store: Alertmanager v2 shape, active and pending only."""

from __future__ import annotations

import asyncio
from pathlib import Path

from watchkeeper.core.notify.silences import Silence
from watchkeeper.dashboard.silences import current_silences, read_silences, silence_json, store_silence_provider
from watchkeeper.plumbing.config import Config
from watchkeeper.sinks.notify_store import SilenceStore, store_paths

NOW = 1_800_000_000.0


def _silence(id: str, start: float, end: float, matchers: str = 'alertname="DiskFull"') -> Silence:
    return Silence.of(id, matchers, start, end, "alice", f"comment {id}")


def test_v2_shape_with_every_matcher_operator() -> None:
    s = _silence("a1", NOW - 60, NOW + 3600, 'alertname="DiskFull",env!="dev",instance=~"web-.*",job!~"batch|cron"')
    assert silence_json(s, NOW) == {
        "id": "a1",
        "status": {"state": "active"},
        "matchers": [
            {"name": "alertname", "value": "DiskFull", "isRegex": False, "isEqual": True},
            {"name": "env", "value": "dev", "isRegex": False, "isEqual": False},
            {"name": "instance", "value": "web-.*", "isRegex": True, "isEqual": True},
            {"name": "job", "value": "batch|cron", "isRegex": True, "isEqual": False},
        ],
        "createdBy": "alice",
        "comment": "comment a1",
        "startsAt": "2027-01-15T07:59:00.000Z",
        "endsAt": "2027-01-15T09:00:00.000Z",
    }


def test_expired_left_out_active_before_pending() -> None:
    silences = [
        _silence("pending", NOW + 600, NOW + 1200),
        _silence("expired", NOW - 7200, NOW - 3600),
        _silence("active-late", NOW - 60, NOW + 7200),
        _silence("active-soon", NOW - 60, NOW + 60),
        _silence("ended-now", NOW - 60, NOW),  # ends_at is exclusive: expired at NOW
    ]
    listed = current_silences(silences, NOW)
    assert [s["id"] for s in listed] == ["active-soon", "active-late", "pending"]
    assert [s["status"]["state"] for s in listed] == ["active", "active", "pending"]


def test_provider_reads_the_store_the_cli_writes(tmp_path: Path) -> None:
    cfg = Config(data_dir=str(tmp_path / "data"))
    path = store_paths(cfg.data_path)[1]
    provider = store_silence_provider(cfg.data_path)
    assert asyncio.run(provider()) == []
    assert not path.exists(), "reading must not create the store"
    store = SilenceStore(path)
    store.add(_silence("live", 0, 4_000_000_000))
    store.add(_silence("old", 0, 1))
    store.close()
    assert [s["id"] for s in asyncio.run(provider())] == ["live"]
    assert read_silences(path, 0.5)[0]["id"] == "old"  # at t=0.5 the old one was still active

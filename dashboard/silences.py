"""The dashboard's silences: read from the durable store `watchkeeper silence` writes and the notification sink
reads (`<data_dir>/notify/silences.sqlite`), shown in Alertmanager's v2 silence shape so the page (and anyone
who knows Alertmanager's API) reads them the same way. Expired silences are left out: they mute nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from watchkeeper.core.notify.silences import Silence
from watchkeeper.sinks.notify_store import SilenceStore, store_paths


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def silence_json(s: Silence, now: float) -> dict[str, Any]:
    """One silence as Alertmanager's v2 `gettableSilence` (without `updatedAt`, which the store does not keep)."""
    return {
        "id": s.id,
        "status": {"state": s.state(now)},
        "matchers": [
            {"name": m.name, "value": m.value, "isRegex": m.op in ("=~", "!~"), "isEqual": m.op in ("=", "=~")}
            for m in s.matchers
        ],
        "createdBy": s.created_by,
        "comment": s.comment,
        "startsAt": _rfc3339(s.starts_at),
        "endsAt": _rfc3339(s.ends_at),
    }


def current_silences(silences: list[Silence], now: float) -> list[dict[str, Any]]:
    """Active then pending silences (expired ones dropped), each group by end time, as Alertmanager lists them."""
    order = {"active": 0, "pending": 1}
    live = [s for s in silences if s.state(now) in order]
    live.sort(key=lambda s: (order[s.state(now)], s.ends_at, s.id))
    return [silence_json(s, now) for s in live]


def read_silences(path: Path, now: float) -> list[dict[str, Any]]:
    """The store's current silences; a store not written yet holds none (and is not created by reading)."""
    if not path.exists():
        return []
    store = SilenceStore(path)
    try:
        return current_silences(store.all(), now)
    finally:
        store.close()


def store_silence_provider(data_path: Path) -> Callable[[], Awaitable[list[dict[str, Any]]]]:
    """A silence provider for `create_dashboard_app` reading the store under `data_path` on each refresh, off the
    event loop (SQLite blocks; the sink or the CLI may be writing)."""
    path = store_paths(data_path)[1]

    async def provider() -> list[dict[str, Any]]:
        return await asyncio.to_thread(read_silences, path, time.time())

    return provider

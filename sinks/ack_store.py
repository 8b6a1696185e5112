"""Acknowledgements in `<data_dir>/notify/acks.sqlite` (SQLite, WAL), shared like the silences: written by
`watchkeeper ack`, the dashboard's button and `POST /api/v2/alerts/acknowledge`, read by the notification
sink at every flush. The sink marks each ack once it has recorded it on `wk.notifications`, so every ack
reaches the `notifications` table exactly once even if it was made while the sink was down."""

from __future__ import annotations

import math
import sqlite3
import uuid
from pathlib import Path

import orjson

from watchkeeper.core.notify.acks import Ack
from watchkeeper.core.notify.matchers import matchers_str, parse_matchers
from watchkeeper.schemas.alerts import AlertEvent
from watchkeeper.sinks.notify_store import store_paths


def ack_store_path(data_path: Path) -> Path:
    return store_paths(data_path)[0].with_name("acks.sqlite")


class AckStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), isolation_level=None, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS acks (id TEXT PRIMARY KEY, created_at REAL NOT NULL, "
                        "by TEXT NOT NULL, comment TEXT NOT NULL, fingerprint TEXT NOT NULL, matchers TEXT NOT NULL, "
                        "expires_at REAL, recorded INTEGER NOT NULL DEFAULT 0)")

    def add(self, a: Ack) -> None:
        self.db.execute("INSERT INTO acks VALUES (?, ?, ?, ?, ?, ?, ?, 0)",
                        (a.id, a.created_at, a.by, a.comment, a.fingerprint,
                         matchers_str(a.matchers) if a.matchers else "",
                         None if math.isinf(a.expires_at) else a.expires_at))

    def all(self) -> list[Ack]:
        rows = self.db.execute("SELECT id, created_at, by, comment, fingerprint, matchers, expires_at FROM acks "
                               "ORDER BY created_at, id").fetchall()
        return [_ack(r) for r in rows]

    def active(self, now: float) -> list[Ack]:
        rows = self.db.execute("SELECT id, created_at, by, comment, fingerprint, matchers, expires_at FROM acks "
                               "WHERE expires_at IS NULL OR expires_at > ? ORDER BY created_at, id", (now,)).fetchall()
        return [_ack(r) for r in rows]

    def unrecorded(self) -> list[Ack]:
        rows = self.db.execute("SELECT id, created_at, by, comment, fingerprint, matchers, expires_at FROM acks "
                               "WHERE recorded = 0 ORDER BY created_at, id").fetchall()
        return [_ack(r) for r in rows]

    def mark_recorded(self, ids: list[str]) -> None:
        self.db.executemany("UPDATE acks SET recorded = 1 WHERE id = ?", [(i,) for i in ids])

    def expire(self, id: str, now: float) -> bool:
        """End an ack now (a unique id prefix is enough)."""
        cur = self.db.execute("UPDATE acks SET expires_at = ? WHERE (id = ? OR id LIKE ?) AND "
                              "(expires_at IS NULL OR expires_at > ?)", (now, id, id + "%", now))
        return cur.rowcount > 0

    def prune(self, before: float) -> None:
        """Forget acks that expired before `before` and were recorded (they cover nothing any more)."""
        self.db.execute("DELETE FROM acks WHERE recorded = 1 AND expires_at IS NOT NULL AND expires_at < ?", (before,))

    def close(self) -> None:
        self.db.close()


def _ack(r: tuple[object, ...]) -> Ack:
    return Ack(str(r[0]), float(r[1]), str(r[2]), str(r[3]), str(r[4]),  # type: ignore[arg-type]
               tuple(parse_matchers(str(r[5]))) if r[5] else (),
               math.inf if r[6] is None else float(r[6]))  # type: ignore[arg-type]


def firing_alerts(state_path: Path) -> list[AlertEvent]:
    """The firing alerts the notification sink holds (read-only; none if it never ran here), to tell the
    person acknowledging what their ack covers now."""
    if not state_path.exists():
        return []
    db = sqlite3.connect(f"file:{state_path}?mode=ro", uri=True, timeout=30)
    try:
        rows = db.execute("SELECT event FROM alerts").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        db.close()
    alerts = [AlertEvent.model_validate(orjson.loads(r[0])) for r in rows]
    return [a for a in alerts if a.state == "firing"]


def acknowledge(data_path: Path, *, comment: str, by: str, fingerprint: str = "", matchers: str = "",
                expires_in: float | None = None, now: float) -> tuple[Ack, list[AlertEvent]]:
    """Make and store an ack (the CLI, the dashboard button and the HTTP API all come here); returns it and
    the firing alerts it covers now. Raises AckError for a bad one, storing nothing."""
    ack = Ack.of(uuid.uuid4().hex, now, by, comment, fingerprint=fingerprint, matchers=matchers,
                 expires_at=math.inf if expires_in is None else now + expires_in)
    store = AckStore(ack_store_path(data_path))
    try:
        store.add(ack)
    finally:
        store.close()
    covered = [a for a in firing_alerts(store_paths(data_path)[0]) if ack.covers(a, now)]
    return ack, covered

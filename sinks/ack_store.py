"""Acknowledgements in `<data_dir>/notify/acks.sqlite` (SQLite, WAL), shared like the silences: written by
`watchkeeper ack`, the dashboard's button and `POST /api/v2/alerts/acknowledge`, read by the notification
sink at every flush. The sink marks each ack once it has recorded it on `wk.notifications`, so every ack
reaches the `notifications` table exactly once even if it was made while the sink was down."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

from core.notify.acks import Ack
from core.notify.matchers import matchers_str, parse_matchers


def ack_store_path(data_path: Path) -> Path:
    return data_path / "notify" / "acks.sqlite"


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

"""The notification sink's durable state in SQLite (WAL): the alerts it holds, the notification log
(what each integration was last told, for dedup and repeat_interval) and the outbox (notifications
written before they are sent, acknowledged after a 2xx). A crash or SIGKILL loses nothing: on restart
the alerts rebuild the groups, the log stops a second notification of the same states, and the outbox
sends what was not acknowledged. Silences live in their own file, shared with `watchkeeper silence`."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import orjson

from watchkeeper.core.notify.dispatch import LogEntry
from watchkeeper.core.notify.matchers import parse_matchers
from watchkeeper.core.notify.notification import Notification
from watchkeeper.core.notify.silences import Silence
from watchkeeper.schemas.alerts import AlertEvent

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (fingerprint TEXT PRIMARY KEY, event BLOB NOT NULL, updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS nflog (receiver TEXT, integration TEXT, group_key TEXT, firing BLOB, resolved BLOB,
    time REAL, PRIMARY KEY (receiver, integration, group_key));
CREATE TABLE IF NOT EXISTS outbox (id TEXT PRIMARY KEY, receiver TEXT, integration TEXT, group_key TEXT,
    body BLOB NOT NULL, created REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_at REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending', error TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, next_at);
"""


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path), isolation_level=None, timeout=30)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    return db


class NotifyStore:
    def __init__(self, path: Path) -> None:
        self.db = _connect(path)
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    # alerts ---------------------------------------------------------------------------------------
    def put_alerts(self, events: list[AlertEvent]) -> None:
        now = time.time()
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT OR REPLACE INTO alerts VALUES (?, ?, ?)",
                                [(e.fingerprint, orjson.dumps(e.model_dump(mode="json")), now) for e in events])

    def drop_alerts(self, fingerprints: list[str]) -> None:
        self.db.executemany("DELETE FROM alerts WHERE fingerprint = ?", [(f,) for f in fingerprints])

    def alerts(self) -> list[AlertEvent]:
        return [AlertEvent.model_validate(orjson.loads(row[0])) for row in self.db.execute("SELECT event FROM alerts")]

    def known(self, fingerprint: str) -> AlertEvent | None:
        row = self.db.execute("SELECT event FROM alerts WHERE fingerprint = ?", (fingerprint,)).fetchone()
        return AlertEvent.model_validate(orjson.loads(row[0])) if row else None

    # notification log and outbox, written together -------------------------------------------------
    def log_entry(self, receiver: str, integration: str, *, group_key: str) -> LogEntry | None:
        row = self.db.execute("SELECT firing, resolved, time FROM nflog WHERE receiver=? AND integration=? AND "
                              "group_key=?", (receiver, integration, group_key)).fetchone()
        if row is None:
            return None
        return LogEntry(frozenset(orjson.loads(row[0])), frozenset(orjson.loads(row[1])), float(row[2]))

    def enqueue(self, receiver: str, group_key: str, log: dict[str, LogEntry], notes: list[Notification],
                now: float) -> None:
        self.enqueue_many([(receiver, group_key, log, notes)], now)

    def enqueue_many(self, flushes: list[tuple[str, str, dict[str, LogEntry], list[Notification]]],
                     now: float) -> None:
        """Log what each integration is told and put the notifications in the outbox, atomically."""
        with self.db:
            self.db.execute("BEGIN")
            for receiver, group_key, log, notes in flushes:
                self._enqueue(receiver, group_key, log, notes, now)

    def _enqueue(self, receiver: str, group_key: str, log: dict[str, LogEntry], notes: list[Notification],
                 now: float) -> None:
        for integ, e in log.items():
            self.db.execute("INSERT OR REPLACE INTO nflog VALUES (?, ?, ?, ?, ?, ?)",
                            (receiver, integ, group_key, orjson.dumps(sorted(e.firing)),
                             orjson.dumps(sorted(e.resolved)), e.time))
        for n in notes:
            self.db.execute("INSERT OR IGNORE INTO outbox (id, receiver, integration, group_key, body, created, "
                            "next_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (n.notification_id, n.receiver, n.integration, n.group_key,
                             orjson.dumps(n.to_json()), now, now))

    def due(self, now: float, exclude: set[str], limit: int) -> list[tuple[str, int, float, Notification]]:
        rows = self.db.execute("SELECT id, attempts, created, body FROM outbox WHERE state='pending' AND next_at<=? "
                               "ORDER BY next_at LIMIT ?", (now, limit + len(exclude))).fetchall()
        out = [(r[0], int(r[1]), float(r[2]), Notification.from_json(orjson.loads(r[3]))) for r in rows
               if r[0] not in exclude]
        return out[:limit]

    def next_due(self) -> float | None:
        row = self.db.execute("SELECT MIN(next_at) FROM outbox WHERE state='pending'").fetchone()
        return float(row[0]) if row and row[0] is not None else None

    def acked(self, id: str) -> None:
        self.db.execute("UPDATE outbox SET state='acked', attempts=attempts+1, error='' WHERE id=?", (id,))

    def retry(self, id: str, next_at: float, error: str) -> None:
        self.db.execute("UPDATE outbox SET attempts=attempts+1, next_at=?, error=? WHERE id=?", (next_at, error, id))

    def failed(self, id: str, error: str) -> None:
        self.db.execute("UPDATE outbox SET state='failed', attempts=attempts+1, error=? WHERE id=?", (error, id))

    def held(self, id: str, reason: str) -> None:
        """Not sent on purpose (a rate limit): done, neither acknowledged by a peer nor failed."""
        self.db.execute("UPDATE outbox SET state='held', attempts=attempts+1, error=? WHERE id=?", (reason, id))


class SilenceStore:
    """Silences, in `<data_dir>/notify/silences.sqlite`: written by `watchkeeper silence`, read by the sink."""

    def __init__(self, path: Path) -> None:
        self.db = _connect(path)
        self.db.execute("CREATE TABLE IF NOT EXISTS silences (id TEXT PRIMARY KEY, matchers TEXT NOT NULL, "
                        "starts_at REAL NOT NULL, ends_at REAL NOT NULL, created_by TEXT, comment TEXT, "
                        "updated REAL NOT NULL)")

    def add(self, s: Silence) -> None:
        self.db.execute("INSERT OR REPLACE INTO silences VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (s.id, s.matchers_text, s.starts_at, s.ends_at, s.created_by, s.comment, time.time()))

    def all(self) -> list[Silence]:
        rows = self.db.execute("SELECT id, matchers, starts_at, ends_at, created_by, comment FROM silences "
                               "ORDER BY starts_at").fetchall()
        return [Silence(r[0], parse_matchers(r[1]), float(r[2]), float(r[3]), r[4] or "", r[5] or "") for r in rows]

    def expire(self, id: str, now: float) -> bool:
        cur = self.db.execute("UPDATE silences SET ends_at=?, updated=? WHERE (id=? OR id LIKE ?) AND ends_at>?",
                              (now, now, id, id + "%", now))
        return cur.rowcount > 0

    def close(self) -> None:
        self.db.close()


def store_paths(data_path: Path) -> tuple[Path, Path]:
    return data_path / "notify" / "state.sqlite", data_path / "notify" / "silences.sqlite"

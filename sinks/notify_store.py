"""The notification sink's durable state in SQLite (WAL): the alerts it holds, the notification log
(what each integration was last told, for dedup and repeat_interval) and the outbox (notifications
written before they are sent, acknowledged after a 2xx). A crash or SIGKILL loses nothing: on restart
the alerts rebuild the groups, the log stops a second notification of the same states, and the outbox
sends what was not acknowledged. Silences live in their own file, shared with `watchkeeper silence`.

Bounded (core/notify/outbox_bounds.py): finished outbox rows (acked, failed, held) and log entries older
than the retention are deleted in small batches, and the file is in incremental auto-vacuum mode so the
pages they free are given back to the file system, not only reused."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

import orjson

from watchkeeper.core.notify.dispatch import LogEntry
from watchkeeper.core.notify.matchers import parse_matchers
from watchkeeper.core.notify.notification import Notification
from watchkeeper.core.notify.silences import Silence
from watchkeeper.core.notify.stale_events import Applied
from watchkeeper.schemas.alerts import AlertEvent

log = logging.getLogger("watchkeeper.notify")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (fingerprint TEXT PRIMARY KEY, event BLOB NOT NULL, updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS nflog (receiver TEXT, integration TEXT, group_key TEXT, firing BLOB, resolved BLOB,
    time REAL, PRIMARY KEY (receiver, integration, group_key));
CREATE TABLE IF NOT EXISTS outbox (id TEXT PRIMARY KEY, receiver TEXT, integration TEXT, group_key TEXT,
    body BLOB NOT NULL, created REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_at REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending', error TEXT NOT NULL DEFAULT '', finished REAL);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, next_at);
CREATE INDEX IF NOT EXISTS nflog_time ON nflog (time);
CREATE TABLE IF NOT EXISTS applied (fingerprint TEXT PRIMARY KEY, event_time REAL NOT NULL, state TEXT NOT NULL,
    written REAL NOT NULL);
CREATE INDEX IF NOT EXISTS applied_written ON applied (written);
"""
# After the `finished` column exists (files written before it have it added by _migrate). Rows finished
# before the column existed have no finish time: their creation time stands in (they finished after it).
_FINISHED_INDEX = ("CREATE INDEX IF NOT EXISTS outbox_finished ON outbox (coalesce(finished, created)) "
                   "WHERE state <> 'pending'")
_INCREMENTAL = 2  # PRAGMA auto_vacuum's value for INCREMENTAL
# A WAL file keeps its largest size after a checkpoint unless limited; a pruning round must not leave it big.
_WAL_LIMIT_BYTES = 16 * 2**20


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path), isolation_level=None, timeout=30)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    return db


class NotifyStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), isolation_level=None, timeout=30)
        # Before anything writes the file's header (journal_mode=WAL does): only a new, empty file takes this
        # without a VACUUM. A file made before it is converted by `compact()` once its backlog is pruned.
        self.db.execute("PRAGMA auto_vacuum=INCREMENTAL")
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute(f"PRAGMA journal_size_limit={_WAL_LIMIT_BYTES}")
        self.db.executescript(_SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(outbox)")}
        if "finished" not in columns:
            self.db.execute("ALTER TABLE outbox ADD COLUMN finished REAL")
        self.db.execute(_FINISHED_INDEX)

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

    def acked(self, id: str, now: float) -> None:
        self.db.execute("UPDATE outbox SET state='acked', attempts=attempts+1, error='', finished=? WHERE id=?",
                        (now, id))

    def retry(self, id: str, next_at: float, error: str) -> None:
        self.db.execute("UPDATE outbox SET attempts=attempts+1, next_at=?, error=? WHERE id=?", (next_at, error, id))

    def failed(self, id: str, error: str, now: float) -> None:
        self.db.execute("UPDATE outbox SET state='failed', attempts=attempts+1, error=?, finished=? WHERE id=?",
                        (error, now, id))

    def held(self, id: str, reason: str, now: float) -> None:
        """Not sent on purpose (a rate limit): done, neither acknowledged by a peer nor failed."""
        self.db.execute("UPDATE outbox SET state='held', attempts=attempts+1, error=?, finished=? WHERE id=?",
                        (reason, now, id))

    # bounds -----------------------------------------------------------------------------------------
    def pending_count(self) -> int:
        """Notifications waiting to be sent (new or retrying), which `notify.outbox_max_pending` bounds."""
        return int(self.db.execute("SELECT count(*) FROM outbox WHERE state='pending'").fetchone()[0])

    def prune_outbox(self, before: float, limit: int) -> int:
        """Delete up to `limit` finished rows (acked, failed, held) finished before `before`; a pending or
        retrying row is never deleted, whatever its age (its give-up time ends it)."""
        cur = self.db.execute("DELETE FROM outbox WHERE rowid IN (SELECT rowid FROM outbox WHERE state <> 'pending' "
                              "AND coalesce(finished, created) < ? LIMIT ?)", (before, limit))
        return cur.rowcount

    def applied(self, fingerprint: str) -> Applied | None:
        """The newest transition applied for `fingerprint` (kept for the log retention so that a replay
        after a restart is still recognised as old), or None."""
        row = self.db.execute("SELECT event_time, state FROM applied WHERE fingerprint = ?", (fingerprint,)).fetchone()
        return None if row is None else Applied(float(row[0]), row[1])

    def put_applied(self, events: list[AlertEvent], now: float) -> None:
        """Remember each event as the newest applied transition of its fingerprint, written at `now`."""
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO applied VALUES (?, ?, ?, ?)",
                                [(e.fingerprint, e.event_time, e.state, now) for e in events])

    def prune_applied(self, before: float, limit: int) -> int:
        """Delete up to `limit` applied-transition rows written before `before` (the log retention)."""
        cur = self.db.execute("DELETE FROM applied WHERE rowid IN (SELECT rowid FROM applied WHERE written < ? "
                              "LIMIT ?)", (before, limit))
        return cur.rowcount

    def prune_log(self, before: float, limit: int, active_groups: Iterable[str]) -> int:
        """Delete up to `limit` notification-log entries last written before `before`, except those of
        `active_groups` (groups the dispatcher still holds: their entry is what stops a repeat before
        `repeat_interval`, however long that is)."""
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute("CREATE TEMP TABLE IF NOT EXISTS active_groups (group_key TEXT PRIMARY KEY)")
            self.db.execute("DELETE FROM temp.active_groups")
            self.db.executemany("INSERT OR IGNORE INTO temp.active_groups VALUES (?)", [(k,) for k in active_groups])
            cur = self.db.execute("DELETE FROM nflog WHERE rowid IN (SELECT rowid FROM nflog WHERE time < ? AND "
                                  "group_key NOT IN (SELECT group_key FROM temp.active_groups) LIMIT ?)",
                                  (before, limit))
            return cur.rowcount

    def reclaim(self) -> int:
        """Give the pages pruning freed back to the file system (incremental auto-vacuum); returns their number.
        Does nothing until the file is in incremental mode (`compact`)."""
        free = int(self.db.execute("PRAGMA freelist_count").fetchone()[0])
        if free and self.incremental:
            # It frees one page per step of the statement and returns no rows, so `execute` would free one page;
            # executescript steps it to the end.
            self.db.executescript("PRAGMA incremental_vacuum;")
            return free
        return 0

    @property
    def incremental(self) -> bool:
        return int(self.db.execute("PRAGMA auto_vacuum").fetchone()[0]) == _INCREMENTAL

    def compact(self) -> bool:
        """Convert a file made before incremental auto-vacuum (one full VACUUM, after its backlog is pruned, so
        it copies only what is kept). True when it ran; the sink calls it once, at the end of a pruning round."""
        if self.incremental:
            return False
        self.db.execute("PRAGMA auto_vacuum=INCREMENTAL")
        try:
            self.db.execute("VACUUM")
        except sqlite3.OperationalError as exc:  # a reader (the dashboard) held the file all the busy timeout
            log.warning("notify state: VACUUM to incremental auto-vacuum postponed to the next round: %s", exc)
            return False
        return True

    def file_bytes(self) -> int:
        """The database's size in pages times the page size (the main file's size once checkpointed)."""
        pages = int(self.db.execute("PRAGMA page_count").fetchone()[0])
        return pages * int(self.db.execute("PRAGMA page_size").fetchone()[0])

    def checkpoint(self) -> None:
        """Copy the WAL into the main file and truncate both (what a reader of the file's size sees)."""
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()


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

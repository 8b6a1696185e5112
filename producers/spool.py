"""The durable local spool between every producer and Kafka.

Producers append encoded batches; the sender reads them back in order and advances a cursor once Kafka has
acknowledged them. So a batch a producer handed over survives a broker outage and a producer restart, and
drains in the order it was taken.

On disk: segment files `<first record number>.seg`, each a run of records
`[u32 payload length][u32 crc32][u32 points][u16 key length][key][value]`, and `cursor`, the number of the
next record to send (written atomically). A torn record at the end of the newest segment (a crash
mid-write) is cut off on open. When the spool would grow past `max_bytes`, the oldest unsent segment is
dropped and counted: a bounded disk is the promise, and the drop is visible in the self-metrics.
"""

from __future__ import annotations

import fcntl
import os
import struct
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

_HEAD = struct.Struct("<IIIH")  # payload length (key + value), crc32, points, key length
_CURSOR = "cursor"


@dataclass(frozen=True, slots=True)
class SpooledRecord:
    number: int  # position in the spool, 0-based over its whole life
    key: bytes
    value: bytes
    points: int
    # The payload no longer matches its checksum (the disk changed it after it was written): the sender
    # dead-letters it rather than sending or stopping on it.
    corrupt: bool = False


@dataclass(slots=True)
class SpoolStats:
    spooled_batches: int = 0
    spooled_points: int = 0
    sent_batches: int = 0
    sent_points: int = 0
    dropped_batches: dict[str, int] = field(default_factory=dict)  # reason -> count
    dropped_points: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Segment:
    first: int  # number of its first record
    path: Path
    offsets: list[int]  # byte offset of each record
    points: list[int]
    size: int

    @property
    def end(self) -> int:
        return self.first + len(self.offsets)


class SpoolError(Exception):
    pass


class Spool:
    def __init__(self, directory: Path, *, max_bytes: int = 1024 * 2**20, segment_bytes: int = 8 * 2**20,
                 fsync_seconds: float = 0.2) -> None:
        self.dir = directory
        self.max_bytes = max_bytes
        self.segment_bytes = min(segment_bytes, max(max_bytes // 4, 4096))
        self.fsync_seconds = fsync_seconds
        self.stats = SpoolStats()
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.dir / "lock", "a+b")  # noqa: SIM115 (held for the spool's life)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            raise SpoolError(f"spool {self.dir} is in use by another process (one process per spool)") from None
        self._segments: list[_Segment] = []
        self._cursor = 0
        self._writer: BinaryIO | None = None
        self._last_sync = time.monotonic()
        self._open()

    # -- state ----------------------------------------------------------------------------------------

    @property
    def next_number(self) -> int:
        return self._segments[-1].end if self._segments else self._cursor

    def pending(self) -> int:
        """Records not yet acknowledged by Kafka."""
        return self.next_number - self._cursor

    def pending_points(self) -> int:
        total = 0
        for seg in self._segments:
            lo = max(0, self._cursor - seg.first)
            total += sum(seg.points[lo:])
        return total

    def disk_bytes(self) -> int:
        return sum(seg.size for seg in self._segments)

    # -- writing --------------------------------------------------------------------------------------

    def fits(self, key: bytes, value: bytes) -> bool:
        """Whether one batch is small enough for the spool at all (callers that must be all or nothing ask first).

        The key's length is stored in 16 bits, so a longer key never fits.
        """
        return len(key) <= 0xFFFF and _HEAD.size + len(key) + len(value) <= self.max_bytes

    def append(self, key: bytes, value: bytes, points: int) -> bool:
        """Add one batch. False when it was dropped (larger than the whole spool may be)."""
        payload = key + value
        record = _HEAD.pack(len(payload), zlib.crc32(payload), points, len(key)) + payload
        if not self.fits(key, value):
            self._count_drop("too_large", 1, points)
            return False
        while self._segments and self.disk_bytes() + len(record) > self.max_bytes:
            self._drop_oldest()
        seg = self._segments[-1] if self._segments else None
        if seg is None or (seg.size + len(record) > self.segment_bytes and seg.offsets):
            seg = self._new_segment(self.next_number)
        fh = self._open_writer(seg)
        fh.write(record)
        seg.offsets.append(seg.size)
        seg.points.append(points)
        seg.size += len(record)
        self.stats.spooled_batches += 1
        self.stats.spooled_points += points
        self._maybe_sync()
        return True

    def sync(self) -> None:
        fh = self._writer
        if fh is not None:
            fh.flush()
            os.fsync(fh.fileno())
        self._last_sync = time.monotonic()

    def _maybe_sync(self) -> None:
        fh = self._writer
        if fh is None:
            return
        if self.fsync_seconds == 0 or time.monotonic() - self._last_sync >= self.fsync_seconds:
            self.sync()
        else:
            fh.flush()

    # -- reading --------------------------------------------------------------------------------------

    def read(self, max_records: int = 500, max_bytes: int = 4 * 2**20) -> list[SpooledRecord]:
        """The oldest unacknowledged records, in order (at least one if any is pending)."""
        out: list[SpooledRecord] = []
        size = 0
        if self._writer is not None:
            self._writer.flush()
        for seg in self._segments:
            if seg.end <= self._cursor:
                continue
            with open(seg.path, "rb") as fh:
                i = max(0, self._cursor - seg.first)
                fh.seek(seg.offsets[i])
                while i < len(seg.offsets) and len(out) < max_records and (not out or size < max_bytes):
                    length, crc, points, key_len = _HEAD.unpack(fh.read(_HEAD.size))
                    payload = fh.read(length)
                    if zlib.crc32(payload) != crc or key_len > len(payload):
                        out.append(SpooledRecord(seg.first + i, b"", payload, points, corrupt=True))
                    else:
                        out.append(SpooledRecord(seg.first + i, payload[:key_len], payload[key_len:], points))
                    size += length
                    i += 1
            if len(out) >= max_records or size >= max_bytes:
                break
        return out

    def ack(self, upto: int) -> None:
        """Records numbered below `upto` are in Kafka: advance the cursor, delete fully sent segments."""
        if upto <= self._cursor:
            return
        for seg in self._segments:
            lo, hi = max(self._cursor, seg.first), min(upto, seg.end)
            if hi > lo:
                self.stats.sent_batches += hi - lo
                self.stats.sent_points += sum(seg.points[lo - seg.first:hi - seg.first])
        self._cursor = upto
        self._write_cursor()
        while len(self._segments) > 1 and self._segments[0].end <= self._cursor:
            self._segments.pop(0).path.unlink(missing_ok=True)

    def close(self) -> None:
        self._close_writer()
        if not self._lock.closed:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()

    # -- internals ------------------------------------------------------------------------------------

    def count_drop(self, reason: str, batches: int, points: int) -> None:
        """Count batches the sender could not deliver (dead-lettered); they also count as sent when acked."""
        self._count_drop(reason, batches, points)

    def _count_drop(self, reason: str, batches: int, points: int) -> None:
        self.stats.dropped_batches[reason] = self.stats.dropped_batches.get(reason, 0) + batches
        self.stats.dropped_points[reason] = self.stats.dropped_points.get(reason, 0) + points

    def _drop_oldest(self) -> None:
        """Spool full: drop the oldest segment's unsent records (a new segment takes over writing)."""
        seg = self._segments[0]
        if seg is self._segments[-1]:
            self._close_writer()
        lo = max(0, self._cursor - seg.first)
        self._count_drop("spool_full", len(seg.offsets) - lo, sum(seg.points[lo:]))
        self._segments.pop(0)
        seg.path.unlink(missing_ok=True)
        if seg.end > self._cursor:
            self._cursor = seg.end
            self._write_cursor()

    def _new_segment(self, first: int) -> _Segment:
        self._close_writer()
        seg = _Segment(first, self.dir / f"{first:020d}.seg", [], [], 0)
        seg.path.touch()
        self._segments.append(seg)
        return seg

    def _open_writer(self, seg: _Segment) -> BinaryIO:
        if self._writer is None:
            self._writer = open(seg.path, "ab")  # noqa: SIM115 (kept open across appends)
        return self._writer

    def _close_writer(self) -> None:
        if self._writer is not None:
            self.sync()
            self._writer.close()
            self._writer = None

    def _write_cursor(self) -> None:
        tmp = self.dir / (_CURSOR + ".tmp")
        tmp.write_text(str(self._cursor))
        os.replace(tmp, self.dir / _CURSOR)

    def _open(self) -> None:
        cursor_file = self.dir / _CURSOR
        try:
            self._cursor = int(cursor_file.read_text()) if cursor_file.exists() else 0
        except ValueError as exc:
            raise SpoolError(f"{cursor_file}: not a record number ({exc})") from exc
        paths = sorted(self.dir.glob("*.seg"))
        for path in paths:
            try:
                first = int(path.stem)
            except ValueError:
                continue
            seg = self._scan(path, first)
            if seg.end <= self._cursor and path != paths[-1]:
                path.unlink()
                continue
            self._segments.append(seg)
        if self._segments and self._cursor < self._segments[0].first:
            self._cursor = self._segments[0].first  # records before it were dropped or sent
        if not self._segments:
            self._segments.append(_Segment(self._cursor, self.dir / f"{self._cursor:020d}.seg", [], [], 0))
            self._segments[0].path.touch()

    @staticmethod
    def _scan(path: Path, first: int) -> _Segment:
        """Index a segment; a torn or corrupt tail (a crash mid-write) is cut off."""
        data = path.read_bytes()
        offsets: list[int] = []
        points: list[int] = []
        pos = 0
        while pos + _HEAD.size <= len(data):
            length, crc, n, _ = _HEAD.unpack_from(data, pos)
            end = pos + _HEAD.size + length
            if end > len(data) or zlib.crc32(data[pos + _HEAD.size:end]) != crc:
                break
            offsets.append(pos)
            points.append(n)
            pos = end
        if pos != len(data):
            with open(path, "r+b") as fh:
                fh.truncate(pos)
        return _Segment(first, path, offsets, points, pos)

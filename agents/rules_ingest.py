"""Samples into a rules store, with event time per source: what the full rules step (`agents.rules_step`,
one store for every partition) and the partitioned one's partial stage (`agents.rules_partial_step`, a
store per partition) both do with a `wk.samples` message, so both accept and refuse the same samples and
move their watermarks the same way.

Event time per source, as in the window engine (`core.source_clocks`, shared with it): each source of a
partition (the message's Kafka key, or for a message without one its batch `source` or sample host label)
has its own event time; a sample more than `max_future` ahead of its message's processing time (the Kafka
record's timestamp) is refused (`future`, counted per source; the window agent, reading the same topic,
dead-letters it) and moves nothing, so one wrong clock can neither blind a partition's rules nor make the
samples of the other sources on it late.

- A partition's watermark is the minimum over its live sources of (newest event time - `allowed_lateness`),
  never moving back and never past the partition's processing clock (minus `allowed_lateness`), so a
  source whose clock is ahead (within `max_future`) does not make a correct source that joins later
  late. A source stops holding it back once it is idle (nothing for `idle_timeout` of the partition's
  processing clock) or more than `max_future` behind the partition's newest source (a slow clock delays
  alerts by at most that much); with no live source it is the newest source's. A source new to the
  partition (or back from idle) joins at the partition's watermark: its samples at or before it are late.
- A sample is *late* when its time is at or before its source's watermark or its partition's when it
  arrives. Late samples are not stored. That is a property of the partition's order alone, so a tick at
  or before the watermark sees exactly the samples that are not late and not newer than it.
- Replay marks (`Mark`, one per minute of event time) say where a re-read of a partition may start with
  which clock, so that it makes the same decisions as a read from the partition's beginning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from watchkeeper.core.promql.series_store import SeriesStore
from watchkeeper.core.sample_columns import SampleColumns
from watchkeeper.core.sample_decode import OneSample, decode_samples, message_source
from watchkeeper.core.sample_rejects import MAX_TS, MIN_TS
from watchkeeper.core.series_registry import SeriesRegistry
from watchkeeper.core.source_clocks import SourceClocks
from watchkeeper.schemas.codec import SchemaError

RULE_OUTPUT_PREFIX = b"rules/"
MARK_EVERY = 60.0  # seconds of event time between replay marks of a partition
PRUNE_EVERY = 60.0  # seconds of event time between prunes of a store (each one visits every series)
FLUSH_POINTS = 1_000_000  # queued points appended to the store at the latest at this many


def json_time(x: float) -> float | None:
    """A time for JSON: non-finite ones (-inf: none yet) as null."""
    return x if math.isfinite(x) else None


def time_of(x: float | None) -> float:
    """`json_time`'s inverse (null: -inf)."""
    return -math.inf if x is None else float(x)


@dataclass
class Mark:
    """Where a replay of a partition may start: reading from `offset` with the clock set to these values
    makes the same decisions as reading the partition from its beginning."""

    offset: int
    max_et: float  # newest event time of a real sample before `offset` (-inf: none)
    max_any: float  # newest time of any sample (rule output too) before `offset`
    # The partition's sources before `offset` (`PartitionClock.state`); None in checkpoints written before
    # per-source event time: the partition's watermark is then max_et - lateness.
    sources: dict[str, Any] | None = None

    def to_json(self) -> list[Any]:
        return [self.offset, json_time(self.max_et), json_time(self.max_any), *([self.sources] if self.sources else [])]

    @classmethod
    def from_json(cls, m: list[Any]) -> Mark:
        return cls(int(m[0]), time_of(m[1]), time_of(m[2]), m[3] if len(m) > 3 else None)


@dataclass
class PartitionClock:
    next_offset: int  # the next offset to read
    sources: SourceClocks
    start_high: int | None = None  # the partition's end when this process first fetched it
    max_et: float = -math.inf
    max_any: float = -math.inf
    first_et: float | None = None
    wm: float = -math.inf  # the partition's watermark (see the module docstring)
    marks: list[Mark] = field(default_factory=list)
    forget_due: float = -math.inf  # processing time of the next check for sources to forget

    @classmethod
    def at(cls, mark: Mark, lateness: float, idle_timeout: float, max_future: float) -> PartitionClock:
        """A clock that reads the partition from `mark` on."""
        clock = cls(next_offset=mark.offset, sources=SourceClocks(idle_timeout, max_future), max_et=mark.max_et,
                    max_any=mark.max_any, wm=mark.max_et - lateness, marks=[mark])
        if mark.sources is not None:
            clock.load(mark.sources)
        return clock

    def state(self) -> dict[str, Any]:
        src = self.sources
        return {"wm": json_time(self.wm), "proc": json_time(src.proc_time), "due": json_time(src.idle_due),
                "sources": src.state(), "forget_due": json_time(self.forget_due)}

    def load(self, state: dict[str, Any]) -> None:
        self.wm = time_of(state["wm"])
        self.sources.load(state["sources"], state["proc"])
        self.sources.idle_due = math.inf if state["due"] is None else float(state["due"])
        due = state.get("forget_due")  # absent in marks written before sources were forgotten
        self.forget_due = -math.inf if due is None else float(due)

    def replay_mark(self, cutoff: float) -> Mark:
        """The newest mark before which every sample is older than `cutoff` (else the oldest kept)."""
        usable = [m for m in self.marks if m.max_any < cutoff]
        return usable[-1] if usable else self.marks[0]

    def prune_marks(self, cutoff: float) -> None:
        """Keep the newest mark usable for `cutoff` (and any later cutoff) and everything after it."""
        usable = [i for i, m in enumerate(self.marks) if m.max_any < cutoff]
        if len(usable) > 1:
            del self.marks[: usable[-1]]

    def forget_sources(self, series_idle: float, keep: int) -> int:
        """Forget the sources idle for `series_idle` of processing time (never `keep`, the one just read),
        every `series_idle / 4`, as the window engine does: only the partition's memory of them goes (they
        hold nothing else here), and since the check times are in the marks, a replay forgets the same
        sources at the same messages. Returns how many."""
        src = self.sources
        if src.proc_time == -math.inf or src.proc_time < self.forget_due:
            return 0
        stale = src.stale(src.proc_time - series_idle, keep)
        for i in stale:
            src.forget(i)
        self.forget_due = src.proc_time + series_idle / 4
        return len(stale)

    def update_watermark(self, lateness: float, max_future: float) -> None:
        """Move the watermark to the minimum over the live sources (see the module docstring)."""
        src = self.sources
        if src.proc_time > -math.inf and src.proc_time >= src.idle_due:
            src.expire()
        live = [m for m, a in zip(src.max_et, src.active, strict=True) if a and m > -math.inf]
        if live:
            lead = max(live)
            wm = min(m for m in live if m >= lead - max_future) - lateness
        else:
            wm = max(src.max_et, default=-math.inf) - lateness
        wm = min(wm, src.proc_time - lateness) if src.proc_time > -math.inf else wm
        if wm > self.wm:
            self.wm = wm

    @property
    def watermark_known(self) -> bool:
        """False while the partition may hold samples this process has not seen (it must wait for them)."""
        if self.max_et > -math.inf:
            return True
        return self.start_high is not None and self.next_offset >= self.start_high


class SeriesBuffer:
    """A store of series and its registry: points queued and appended a series at a time, many messages
    at once; pruned by event time, releasing the registry's series with no point left."""

    def __init__(self) -> None:
        self.registry = SeriesRegistry()
        # Release registry series whose points were all pruned (with the store's prune): without it every
        # series ever seen stays in the registry (~1-2 KB each), so series churn grows the worker for good.
        # The backtest turns it off: it maps stored series to registry indexes once, up front.
        self.release_series = True
        self._newest = np.full(1024, -np.inf)  # per registry index: newest time appended to the store
        self.store = SeriesStore(math.inf)  # trimmed only by `prune`: a tick always finds its history
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._pending_points = 0
        self.pruned_before = -math.inf

    def reset(self) -> None:
        """An empty store (the registry keeps its series: indexes held elsewhere stay valid)."""
        self.store = SeriesStore(math.inf)
        self._pending, self._pending_points = [], 0
        self.pruned_before = -math.inf

    def append(self, series: np.ndarray, ts: np.ndarray, values: np.ndarray) -> None:
        """Queue points for the store; `flush` appends them a series at a time, many messages at once."""
        self._pending.append((series, ts, values))
        self._pending_points += len(ts)
        if self._pending_points >= FLUSH_POINTS:
            self.flush()

    def flush(self) -> None:
        """Append the queued points. A stable sort by series keeps each series' points in arrival order,
        so the store keeps exactly what appending message by message would have kept."""
        if not self._pending:
            return
        series = np.concatenate([p[0] for p in self._pending])
        ts = np.concatenate([p[1] for p in self._pending])
        values = np.concatenate([p[2] for p in self._pending])
        self._pending, self._pending_points = [], 0
        order = np.argsort(series, kind="stable")
        series, ts, values = series[order], ts[order], values[order]
        if len(series) and int(series[-1]) >= len(self._newest):
            grown = np.full(max(int(series[-1]) + 1, 2 * len(self._newest)), -np.inf)
            grown[:len(self._newest)] = self._newest
            self._newest = grown
        np.maximum.at(self._newest, series, ts)
        cuts = np.flatnonzero(np.diff(series)) + 1
        names, labels = self.registry.names, self.registry.labels
        for a, b in zip([0, *cuts.tolist()], [*cuts.tolist(), len(series)], strict=True):
            s = int(series[a])
            self.store.append(names[s], labels[s], ts[a:b], values[a:b])

    def prune(self, cutoff: float) -> None:
        """Drop the points older than `cutoff` (each prune visits every series: call it seldom). The queued
        points are appended first: a series is released only when none of its points is left."""
        self.flush()
        self.store.prune(cutoff)
        self.pruned_before = cutoff
        if self.release_series:
            n = len(self.registry.names)
            newest = self._newest[:n] if n <= len(self._newest) else np.concatenate(
                [self._newest, np.full(n - len(self._newest), -np.inf)])
            keep = np.flatnonzero(newest >= cutoff)  # points still in the store
            if self.registry.release(keep):
                self._newest[np.flatnonzero(newest < cutoff)] = -np.inf


@dataclass(frozen=True)
class IntakeLimits:
    """The window engine's settings a rules store reads the samples topic with (`windows` in
    watchkeeper.yaml), so the rules and the windows accept and refuse the same samples."""

    lateness: float
    max_future: float = 600.0
    idle_timeout: float = 25.0
    series_idle: float | None = None
    max_sources: int = 100_000


class SampleIntake:
    """Which samples of a message a partition accepts (see the module docstring), and the counts of those
    refused. Rule output (key ``rules/...``) never moves a watermark: it is stored when `keep_rule_output`
    (the full step evaluates recording rules over its own store), else skipped."""

    def __init__(self, *, lateness: float, max_future: float = 600.0, idle_timeout: float = 25.0,
                 series_idle: float | None = None, max_sources: int = 100_000, keep_rule_output: bool = True) -> None:
        self.lateness = lateness
        self.max_future = max_future  # `windows.max_future`
        self.idle_timeout = idle_timeout  # the window engine's (`windows.idle_timeout`)
        # Sources idle this long are forgotten; beyond max_sources per partition a new one is refused
        # (`windows.series_idle_seconds`, `windows.max_sources`: the window engine's, so both agree).
        self.series_idle = max(3600.0, 4 * idle_timeout) if series_idle is None else series_idle
        self.max_sources = max_sources
        self.keep_rule_output = keep_rule_output
        self.source_limit = 0  # samples of a new source refused: its partition held max_sources
        self.sources_forgotten = 0
        self.samples = self.late = self.bad = self.recorded_in = 0
        self.recorded_skipped = 0  # rule output messages not stored (keep_rule_output off)
        self.future = self.bad_timestamp = 0  # samples refused (future: also per source, `source_future`)

    def clock_at(self, mark: Mark) -> PartitionClock:
        return PartitionClock.at(mark, self.lateness, self.idle_timeout, self.max_future)

    def read(self, clock: PartitionClock, buffer: SeriesBuffer, offset: int, key: bytes | None, raw: bytes,
             now: float | None = None) -> float:
        """One message of the samples topic, written at processing time `now` (the Kafka record's
        timestamp, in seconds; None: no `future` check and no idle sources). Returns the time of its
        earliest sample accepted (inf: none)."""
        if offset < clock.next_offset:
            return math.inf
        clock.next_offset = offset + 1
        if not self.keep_rule_output and key is not None and key.startswith(RULE_OUTPUT_PREFIX):
            self.recorded_skipped += 1
            return math.inf
        source = key.decode("utf-8", "replace") if key else ""
        try:
            got = decode_samples(raw, buffer.registry, source=source)
            if not source:
                source = message_source(raw, got, buffer.registry)
        except SchemaError:
            self.bad += 1  # the window agent dead-letters it; here it is only counted
            return math.inf
        cols = got.columns() if type(got) is OneSample else got
        return self.read_columns(clock, buffer, offset, key, cols, now, source)  # type: ignore[arg-type]

    def read_columns(self, clock: PartitionClock, buffer: SeriesBuffer, offset: int, key: bytes | None,
                     cols: SampleColumns, now: float | None = None, source: str | None = None) -> float:
        """`read` after decoding (series indexes from `buffer.registry`). `source`: the message's source
        (default: its key)."""
        clock.next_offset = max(clock.next_offset, offset + 1)
        if not len(cols):
            return math.inf
        own = key is not None and key.startswith(RULE_OUTPUT_PREFIX)
        if own and not self.keep_rule_output:
            self.recorded_skipped += 1
            return math.inf
        ts = cols.ts
        src = clock.sources
        name = None
        if not own:
            name = source if source is not None else key.decode("utf-8", "replace") if key else ""
            if name not in src.ids and len(src) >= self.max_sources:
                self.source_limit += len(cols)  # as the window step's `source_limit`: nothing of it is kept
                return math.inf
        bound = min(src.future_bound(now), MAX_TS)
        valid = None if own or (ts.max() <= bound and ts.min() >= MIN_TS) else (ts >= MIN_TS) & (ts <= bound)
        if valid is not None and not valid.any():
            newest = -math.inf
        else:
            newest = float(ts.max() if valid is None else ts[valid].max())
        new_minute = newest > -math.inf and (
            clock.max_any == -math.inf or newest // MARK_EVERY > clock.max_any // MARK_EVERY)
        if new_minute and clock.marks[-1].offset != offset:
            clock.marks.append(Mark(offset, clock.max_et, clock.max_any, clock.state()))
        clock.max_any = max(clock.max_any, newest)
        if own:
            self.recorded_in += len(cols)
            buffer.append(cols.series, cols.ts, cols.values)
            return math.inf
        s = src.index(name or "")
        if now is not None:
            src.message(s, now)
        fresh = ts > max(src.max_et[s] - self.lateness, clock.wm)
        n_fresh = int(fresh.sum())
        n_late = len(cols) - n_fresh
        if valid is not None:  # refused: past the future bound (`future`), else not a time (`bad_timestamp`)
            n_future = int((ts > bound).sum()) if now is not None else 0
            n_bad = len(cols) - int(valid.sum())
            src.future[s] += n_future
            self.future += n_future
            self.bad_timestamp += n_bad - n_future
            fresh &= valid
            n_late = int((valid & ~fresh).sum())
            n_fresh = int(fresh.sum())
        self.late += n_late
        src.late[s] += n_late
        self.samples += n_fresh
        earliest = math.inf
        if n_fresh:
            if n_fresh < len(cols):
                cols = cols.take(fresh)
            top = float(cols.ts.max())
            earliest = float(cols.ts.min())
            if clock.first_et is None:
                clock.first_et = earliest
            clock.max_et = max(clock.max_et, top)
            src.accepted(s, top)
            buffer.append(cols.series, cols.ts, cols.values)
        clock.update_watermark(self.lateness, self.max_future)
        if src.proc_time >= clock.forget_due:
            self.sources_forgotten += clock.forget_sources(self.series_idle, s)
        return earliest

    def rejected(self) -> dict[str, int]:
        """Samples refused since start, by reason (`watchkeeper_rules_samples_rejected_total`)."""
        return {"late": self.late, "future": self.future, "bad_timestamp": self.bad_timestamp,
                "source_limit": self.source_limit}


def source_future(clocks: list[PartitionClock]) -> dict[str, int]:
    """Samples refused as `future` since start, by source (over the partitions)."""
    out: dict[str, int] = {}
    for clock in clocks:
        for name, n in zip(clock.sources.names, clock.sources.future, strict=True):
            if n and name is not None:
                out[name] = out.get(name, 0) + n
    return out

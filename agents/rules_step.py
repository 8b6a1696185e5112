"""The rules agent's state without Kafka: every sample into one SeriesStore, an event-time watermark over
all partitions, the rule units this process owns advanced to it, and checkpoints. The agent module only
moves bytes between this and the broker, so this is tested without one.

Event time per source, as in the window engine (`core.source_clocks`, shared with it): each source of a
partition (the message's Kafka key, or for a message without one its batch `source` or sample host label)
has its own event time; a sample more than `max_future` ahead of its message's processing time (the Kafka
record's timestamp) is refused (`future`, counted per source; the window agent, reading the same topic,
dead-letters it) and moves nothing, so one wrong clock can neither blind a partition's rules nor make the
samples of the other sources on it late.

Why the results do not depend on how the stream is read (one process or several, fast or slow):
- A partition's watermark is the minimum over its live sources of (newest event time - `allowed_lateness`),
  never moving back and never past the partition's processing clock (minus `allowed_lateness`), so a
  source whose clock is ahead (within `max_future`) does not make a correct source that joins later
  late. A source stops holding it back once it is idle (nothing for `idle_timeout` of the partition's
  processing clock) or more than `max_future` behind the partition's newest source (a slow clock delays
  alerts by at most that much); with no live source it is the newest source's. A source new to the
  partition (or back from idle) joins at the partition's watermark: its samples at or before it are late.
- A sample is *late* when its time is at or before its source's watermark or its partition's when it
  arrives. Late samples are not stored. That is a property of the partition's order alone, and every
  evaluated tick is at or before every partition's watermark, so a tick sees exactly the samples that
  are not late and not newer than it.
- The watermark is the minimum over partitions of their watermarks. A partition that had data when the
  process started and has not yet given a sample holds it back (it is unknown, not empty).
- Recording-rule output comes back on the samples topic (key ``rules/...``); it is stored but never moves
  a watermark (the agent's own output must not drive it). A unit restored from a checkpoint waits until
  this process has read its own earlier output back (offsets kept in the checkpoint).
- A unit that has no checkpoint starts at the first tick at or after the earliest sample of the stream
  (the process then reads the samples topic from its beginning), not at whatever the watermark is when
  it is first seen.
"""

from __future__ import annotations

import base64
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import orjson

from watchkeeper.core.checkpoint_frame import CheckpointFrameError
from watchkeeper.core.promql.series_store import SeriesStore
from watchkeeper.core.rule_units import RuleUnit
from watchkeeper.core.rules.eval_failures import EvalFailure, EvalFailures
from watchkeeper.core.sample_columns import SampleColumns
from watchkeeper.core.sample_decode import OneSample, decode_samples, message_source
from watchkeeper.core.sample_rejects import MAX_TS, MIN_TS
from watchkeeper.core.series_registry import SeriesRegistry
from watchkeeper.core.source_clocks import SourceClocks
from watchkeeper.runtime.checkpoint import Checkpoint as KeyedCheckpoint
from watchkeeper.schemas.alerts import AlertEvent
from watchkeeper.schemas.codec import SchemaError, encode
from watchkeeper.schemas.samples import Sample, SampleBatch, SeriesBlock

log = logging.getLogger("watchkeeper.rules")

RULE_OUTPUT_PREFIX = b"rules/"
MARK_EVERY = 60.0  # seconds of event time between replay marks of a partition
FLUSH_POINTS = 1_000_000  # queued points appended to the store at the latest at this many
PRUNE_EVERY = 60.0  # seconds of event time between prunes of the store (each one visits every series)


class EngineStepLike(Protocol):
    alerts: list[AlertEvent]
    recorded: list[Sample]


class UnitEngine(Protocol):
    """The part of `core.rules.engine.RuleEngine` the agent uses."""

    def advance(self, store: SeriesStore, watermark: float) -> EngineStepLike: ...

    def snapshot(self) -> bytes: ...

    @property
    def failures(self) -> EvalFailures: ...


# (unit, snapshot or None for a fresh unit, origin: earliest event time for a fresh unit) -> engine
EngineFactory = Callable[[RuleUnit, bytes | None, float], UnitEngine]


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

    def state(self) -> dict[str, Any]:
        src = self.sources
        return {"wm": _num(self.wm), "proc": _num(src.proc_time), "due": _num(src.idle_due), "sources": src.state(),
                "forget_due": _num(self.forget_due)}

    def load(self, state: dict[str, Any]) -> None:
        self.wm = _float(state["wm"])
        self.sources.load(state["sources"], state["proc"])
        self.sources.idle_due = math.inf if state["due"] is None else float(state["due"])
        due = state.get("forget_due")  # absent in marks written before sources were forgotten
        self.forget_due = -math.inf if due is None else float(due)

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


@dataclass
class UnitState:
    unit: RuleUnit
    engine: UnitEngine | None = None  # None until the stream's origin is known (fresh unit)
    snapshot: bytes | None = None
    # Offsets of this unit's own recorded output per partition: read them back before the next tick.
    barrier: dict[int, int] = field(default_factory=dict)
    done: float = -math.inf  # the watermark this unit has been advanced to (ticks at or before it done)


@dataclass
class UnitOutput:
    unit: RuleUnit
    alerts: list[tuple[bytes, bytes]] = field(default_factory=list)  # (fingerprint, AlertEvent)
    recorded: list[tuple[bytes, bytes]] = field(default_factory=list)  # (rules/<group>, SampleBatch)
    dropped: int = 0  # recorded values JSON cannot carry (NaN, ±Inf): kept in this store only


@dataclass
class Checkpoint:
    """One shard's resume point: its units' engine snapshots and barriers, and where to replay from."""

    shard: int
    owner: str
    watermark: float
    units: dict[str, bytes]
    barriers: dict[str, dict[int, int]]
    replay: dict[int, Mark]

    def encode(self) -> bytes:
        """In the one keyed-state checkpoint framing (`runtime.checkpoint`): the units' snapshots as its
        states, the rest as its meta."""
        return KeyedCheckpoint(states={k.encode(): v for k, v in self.units.items()}, meta=self._meta()).encode()

    def _meta(self) -> dict[str, Any]:
        return {
            "shard": self.shard, "owner": self.owner, "watermark": _num(self.watermark),
            "barriers": {k: {str(p): o for p, o in b.items()} for k, b in self.barriers.items()},
            "replay": {str(p): [m.offset, _num(m.max_et), _num(m.max_any), *([m.sources] if m.sources else [])]
                       for p, m in self.replay.items()},
        }

    @classmethod
    def decode(cls, raw: bytes) -> Checkpoint:
        """Either framing: the keyed-state one, or the JSON object (units in base64) written before it."""
        if raw[:1] == b"{":
            d = orjson.loads(raw)
            return cls._of(d, {k: base64.b64decode(v) for k, v in d["units"].items()})
        cp = KeyedCheckpoint.decode(raw)
        return cls._of(cp.meta, {k.decode(): v for k, v in cp.states.items()})

    @classmethod
    def _of(cls, d: dict[str, Any], units: dict[str, bytes]) -> Checkpoint:
        return cls(
            shard=int(d["shard"]), owner=str(d["owner"]), watermark=_float(d["watermark"]), units=units,
            barriers={k: {int(p): int(o) for p, o in b.items()} for k, b in d["barriers"].items()},
            replay={int(p): Mark(int(m[0]), _float(m[1]), _float(m[2]), m[3] if len(m) > 3 else None)
                    for p, m in d["replay"].items()},
        )


def _num(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _float(x: float | None) -> float:
    return -math.inf if x is None else float(x)


def start_marks(partitions: Iterable[int], units: Sequence[RuleUnit],
                checkpoints: Mapping[int, Checkpoint]) -> dict[int, Mark]:
    """Where this process starts reading each partition: early enough for every unit it may own.

    A unit without a checkpoint needs the stream from its beginning (offset 0 here: a position before
    the log start is reset to the earliest offset by the consumer)."""
    known = {key for cp in checkpoints.values() for key in cp.units}
    start: dict[int, Mark] = {}
    for p in partitions:
        if any(u.key not in known for u in units):
            start[p] = Mark(0, -math.inf, -math.inf)
            continue
        marks = [cp.replay[p] for cp in checkpoints.values() if p in cp.replay]
        start[p] = min(marks, key=lambda m: m.offset) if marks else Mark(0, -math.inf, -math.inf)
    return start


class RulesStep:
    """All samples into one store; the owned units advanced by the stream's event-time watermark."""

    def __init__(self, units: Sequence[RuleUnit], shards: int, factory: EngineFactory, *, lateness: float,
                 retention: float, history: float | None = None, owner: str = "",
                 record_groups: Mapping[str, str] | None = None, max_future: float = 600.0,
                 idle_timeout: float = 25.0, series_idle: float | None = None, max_sources: int = 100_000) -> None:
        self.units = list(units)
        # How far back from a tick the rules read (range + offset + lookback); `retention` adds room.
        self.history = retention if history is None else history
        self.record_groups = dict(record_groups or {})  # recorded metric name -> its group (message key)
        self.shards = shards
        self.factory = factory
        self.lateness = lateness
        self.max_future = max_future  # `windows.max_future`
        self.idle_timeout = idle_timeout  # the window engine's (`windows.idle_timeout`)
        # Sources idle this long are forgotten; beyond max_sources per partition a new one is refused
        # (`windows.series_idle_seconds`, `windows.max_sources`: the window engine's, so both agree).
        self.series_idle = max(3600.0, 4 * idle_timeout) if series_idle is None else series_idle
        self.max_sources = max_sources
        self.source_limit = 0  # samples of a new source refused: its partition held max_sources
        self.sources_forgotten = 0
        self.retention = retention
        self.owner = owner
        self.registry = SeriesRegistry()
        # Release registry series whose points were all pruned (with the store's prune): without it every
        # series ever seen stays in the registry (~1-2 KB each), so series churn grows the worker for good.
        # The backtest turns it off: it maps stored series to registry indexes once, up front.
        self.release_series = True
        self._newest = np.full(1024, -np.inf)  # per registry index: newest time appended to the store
        self.store = SeriesStore(math.inf)
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._pending_points = 0
        self.pruned_before = -math.inf
        self.clocks: dict[int, PartitionClock] = {}
        self.owned: dict[int, dict[str, UnitState]] = {}  # shard -> unit key -> state
        self.watermark = -math.inf
        self.origin: float | None = None  # earliest event time, once every partition has given one
        self.start_floor = -math.inf
        self.samples = self.late = self.bad = self.recorded_in = self.failures = 0
        self.future = self.bad_timestamp = 0  # samples refused (future: also per source, `source_future`)

    # -- reading

    def start(self, partition: int, mark: Mark) -> None:
        clock = PartitionClock(next_offset=mark.offset, sources=SourceClocks(self.idle_timeout, self.max_future),
                               max_et=mark.max_et, max_any=mark.max_any, wm=mark.max_et - self.lateness,
                               marks=[mark])
        if mark.sources is not None:
            clock.load(mark.sources)
        self.clocks[partition] = clock
        self.start_floor = max(self.start_floor, mark.max_any)

    def source_future(self) -> dict[str, int]:
        """Samples refused as `future` since start, by source (over the partitions)."""
        out: dict[str, int] = {}
        for clock in self.clocks.values():
            for name, n in zip(clock.sources.names, clock.sources.future, strict=True):
                if n and name is not None:
                    out[name] = out.get(name, 0) + n
        return out

    def rewind(self, marks: Mapping[int, Mark]) -> None:
        """Forget the store and re-read from `marks`: a shard taken over from an owner far behind this
        process needs history this store no longer holds. Owned units keep their state and wait for
        the watermark to pass their next tick again."""
        self.store = SeriesStore(math.inf)
        self._pending, self._pending_points = [], 0
        self.pruned_before = -math.inf
        self.watermark = -math.inf
        self.start_floor = -math.inf
        for p, mark in marks.items():
            self.start(p, mark)

    def history_floor(self) -> float:
        """Event time from which the store is complete: after where reading started and what was pruned."""
        return max(self.start_floor, self.pruned_before)

    def covers(self, checkpoint: Checkpoint) -> bool:
        """Whether this store holds what the checkpoint's units read at their next ticks."""
        return checkpoint.watermark - self.history >= self.history_floor()

    def seen_end(self, partition: int, high: int) -> None:
        """The partition's end offset from the first fetch: until it is read up to there, it is unknown."""
        clock = self.clocks[partition]
        if clock.start_high is None:
            clock.start_high = high

    def ingest(self, partition: int, offset: int, key: bytes | None, raw: bytes, now: float | None = None) -> None:
        """One message of the samples topic, written at processing time `now` (the Kafka record's
        timestamp, in seconds; None: no `future` check and no idle sources)."""
        clock = self.clocks[partition]
        if offset < clock.next_offset:
            return
        clock.next_offset = offset + 1
        source = key.decode("utf-8", "replace") if key else ""
        try:
            got = decode_samples(raw, self.registry, source=source)
            if not source:
                source = message_source(raw, got, self.registry)
        except SchemaError:
            self.bad += 1  # the window agent dead-letters it; here it is only counted
            return
        cols = got.columns() if type(got) is OneSample else got
        self.ingest_columns(partition, offset, key, cols, now, source)  # type: ignore[arg-type]

    def ingest_columns(self, partition: int, offset: int, key: bytes | None, cols: SampleColumns,
                       now: float | None = None, source: str | None = None) -> None:
        """`ingest` after decoding: the path a backtest replays stored samples through (series indexes
        from `self.registry`), so the replay makes exactly the live agent's decisions. `source`: the
        message's source (default: its key)."""
        clock = self.clocks[partition]
        clock.next_offset = max(clock.next_offset, offset + 1)
        if not len(cols):
            return
        own = key is not None and key.startswith(RULE_OUTPUT_PREFIX)
        ts = cols.ts
        src = clock.sources
        name = None
        if not own:
            name = source if source is not None else key.decode("utf-8", "replace") if key else ""
            if name not in src.ids and len(src) >= self.max_sources:
                self.source_limit += len(cols)  # as the window step's `source_limit`: nothing of it is kept
                return
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
            self._append(cols.series, cols.ts, cols.values)
            return
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
        if n_fresh:
            if n_fresh < len(cols):
                cols = cols.take(fresh)
            top = float(cols.ts.max())
            if clock.first_et is None:
                clock.first_et = float(cols.ts.min())
            clock.max_et = max(clock.max_et, top)
            src.accepted(s, top)
            self._append(cols.series, cols.ts, cols.values)
        clock.update_watermark(self.lateness, self.max_future)
        if src.proc_time >= clock.forget_due:
            self.sources_forgotten += clock.forget_sources(self.series_idle, s)

    def rejected(self) -> dict[str, int]:
        """Samples refused since start, by reason (`watchkeeper_rules_samples_rejected_total`)."""
        return {"late": self.late, "future": self.future, "bad_timestamp": self.bad_timestamp,
                "source_limit": self.source_limit}

    def _append(self, series: np.ndarray, ts: np.ndarray, values: np.ndarray) -> None:
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
        starts = [0, *cuts.tolist()]
        ends = [*cuts.tolist(), len(series)]
        names, labels = self.registry.names, self.registry.labels
        for a, b in zip(starts, ends, strict=True):
            s = int(series[a])
            self.store.append(names[s], labels[s], ts[a:b], values[a:b])

    def current_watermark(self) -> float:
        """Min over partitions of (newest event time - lateness); -inf while any partition is unknown."""
        marks = []
        for clock in self.clocks.values():
            if not clock.watermark_known:
                return -math.inf
            if clock.max_et > -math.inf:
                marks.append(clock.wm)
        return min(marks) if marks else -math.inf

    def ahead(self, slack: float) -> list[int]:
        """Partitions more than `slack` seconds of event time ahead of the watermark: pause them, so a
        partition read much faster than the others does not fill memory with points no tick needs yet."""
        if self.watermark == -math.inf:
            return []
        return [p for p, c in self.clocks.items() if c.wm > self.watermark + slack]

    # -- owning shards

    def own(self, shard: int, checkpoint: Checkpoint | None) -> None:
        states = {}
        for unit in self.units:
            if unit.shard(self.shards) != shard:
                continue
            state = UnitState(unit)
            if checkpoint is not None and unit.key in checkpoint.units:
                state.snapshot = checkpoint.units[unit.key]
                state.barrier = dict(checkpoint.barriers.get(unit.key, {}))
                state.engine = self.factory(unit, state.snapshot, -math.inf)
                state.done = checkpoint.watermark
            states[unit.key] = state
        self.owned[shard] = states

    def release(self, shard: int) -> None:
        self.owned.pop(shard, None)

    def checkpoint(self, shard: int) -> Checkpoint:
        states = self.owned.get(shard, {})
        units: dict[str, bytes] = {}
        for key, st in states.items():
            if st.engine is not None:
                units[key] = st.engine.snapshot()
        cutoff = self.watermark - self.retention
        replay = {}
        for p, clock in self.clocks.items():
            usable = [m for m in clock.marks if m.max_any < cutoff]
            replay[p] = usable[-1] if usable else clock.marks[0]
        return Checkpoint(shard, self.owner, self.watermark, units,
                          {k: st.barrier for k, st in states.items() if k in units}, replay)

    def prune_marks(self) -> None:
        """Keep the newest mark old enough for any checkpoint and everything after it."""
        cutoff = self.watermark - self.retention
        for clock in self.clocks.values():
            usable = [i for i, m in enumerate(clock.marks) if m.max_any < cutoff]
            if len(usable) > 1:
                del clock.marks[: usable[-1]]

    # -- evaluating

    def advance(self) -> list[UnitOutput]:
        """Move the watermark and every owned unit whose own output this process has read back."""
        self.flush()
        wm = self.current_watermark()
        if wm > self.watermark:
            self.watermark = wm
        if self.watermark == -math.inf:
            return []
        if self.origin is None:
            firsts = [c.first_et for c in self.clocks.values() if c.first_et is not None]
            self.origin = min(firsts, default=self.watermark)
        outputs = []
        for states in self.owned.values():
            for st in states.values():
                if any(self.clocks[p].next_offset <= o for p, o in st.barrier.items() if p in self.clocks):
                    continue
                steps: list[EngineStepLike] = []
                try:
                    if st.engine is None:
                        # A fresh unit's first tick is anchored on the stream's origin, not on whatever
                        # the watermark is when this process first advances it.
                        st.engine = self.factory(st.unit, None, self.origin)
                        steps.append(st.engine.advance(self.store, self.origin))
                    steps.append(st.engine.advance(self.store, self.watermark))
                except Exception:  # one unit's failure must not stop the others, nor the worker
                    self.failures += 1
                    log.exception("rules: unit %s failed at watermark %s", st.unit.key, self.watermark)
                    continue
                st.done = self.watermark
                if any(step.alerts or step.recorded for step in steps):
                    outputs.append(unit_output(st.unit, steps, self.record_groups))
        self._prune()
        return outputs

    def _prune(self) -> None:
        """Drop history no tick will read: older than `retention` before the slowest owned unit (or the
        watermark). Only here: the store itself never trims (its retention is infinite), so however much
        one read brings in, a tick still finds its history."""
        done = [st.done for states in self.owned.values() for st in states.values()]
        cutoff = min([self.watermark, *done]) - self.retention
        if cutoff - self.pruned_before >= PRUNE_EVERY:
            self.store.prune(cutoff)
            self.pruned_before = cutoff
            if self.release_series:
                n = len(self.registry.names)
                newest = self._newest[:n] if n <= len(self._newest) else np.concatenate(
                    [self._newest, np.full(n - len(self._newest), -np.inf)])
                keep = np.flatnonzero(newest >= cutoff)  # points still in the store
                if self.registry.release(keep):
                    self._newest[np.flatnonzero(newest < cutoff)] = -np.inf

    def produced(self, unit_key: str, partition: int, offset: int) -> None:
        """Record where this unit's recorded output landed (the next owner reads up to it first)."""
        for states in self.owned.values():
            st = states.get(unit_key)
            if st is not None:
                st.barrier[partition] = max(offset, st.barrier.get(partition, -1))

    def take_failures(self) -> list[EvalFailure]:
        """The evaluation failures of every owned unit since the last call (for logs and `/metrics`)."""
        return [f for states in self.owned.values() for st in states.values() if st.engine is not None
                for f in st.engine.failures.take()]

    def owned_units(self) -> list[str]:
        return [k for states in self.owned.values() for k in states]


def unit_output(unit: RuleUnit, steps: Sequence[EngineStepLike], record_groups: Mapping[str, str]) -> UnitOutput:
    """Alerts keyed by fingerprint; recorded samples as one batch per group, keyed ``rules/<group>``."""
    out = UnitOutput(unit)
    for event in (e for step in steps for e in step.alerts):
        out.alerts.append((event.fingerprint.encode(), encode(event)))
    blocks: dict[str, list[SeriesBlock]] = {}
    for s in (r for step in steps for r in step.recorded):
        if not math.isfinite(s.value):
            out.dropped += 1
            continue
        group = record_groups.get(s.name, unit.groups[0])
        blocks.setdefault(group, []).append(
            SeriesBlock(name=s.name, labels=s.labels, kind=s.kind, ts=[s.ts], values=[s.value]))
    for group, series in blocks.items():
        source = f"rules/{group}"
        out.recorded.append((source.encode(), encode(SampleBatch(source=source, series=series))))
    return out


def decode_or_none(raw: bytes | None) -> Checkpoint | None:
    if not raw:
        return None
    try:
        return Checkpoint.decode(raw)
    except (orjson.JSONDecodeError, CheckpointFrameError, KeyError, TypeError, ValueError):
        return None


"""The rules agent's state without Kafka: every sample into one SeriesStore, an event-time watermark over
all partitions, the rule units this process owns advanced to it, and checkpoints. The agent module only
moves bytes between this and the broker, so this is tested without one.

Event time per source, partition watermarks and which samples are accepted (late, future, bad timestamps,
too many sources) are `agents.rules_ingest`'s, shared with the partitioned path's partial stage.

Why the results do not depend on how the stream is read (one process or several, fast or slow):
- The watermark is the minimum over partitions of their watermarks, and every evaluated tick is at or
  before it, so a tick sees exactly the samples that are not late and not newer than it. A partition
  that had data when the process started and has not yet given a sample holds it back (it is unknown,
  not empty).
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

import orjson

from watchkeeper.agents.rules_ingest import (
    PRUNE_EVERY,
    Mark,
    PartitionClock,
    SampleIntake,
    SeriesBuffer,
    json_time,
    source_future,
    time_of,
)
from watchkeeper.core.checkpoint_frame import CheckpointFrameError
from watchkeeper.core.promql.series_store import SeriesStore
from watchkeeper.core.rule_units import RuleUnit
from watchkeeper.core.rules.eval_failures import EvalFailure, EvalFailures
from watchkeeper.core.sample_columns import SampleColumns
from watchkeeper.core.series_registry import SeriesRegistry
from watchkeeper.runtime.checkpoint import Checkpoint as KeyedCheckpoint
from watchkeeper.schemas.alerts import AlertEvent
from watchkeeper.schemas.codec import encode
from watchkeeper.schemas.samples import Sample, SampleBatch, SeriesBlock

log = logging.getLogger("watchkeeper.rules")


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
            "shard": self.shard, "owner": self.owner, "watermark": json_time(self.watermark),
            "barriers": {k: {str(p): o for p, o in b.items()} for k, b in self.barriers.items()},
            "replay": {str(p): m.to_json() for p, m in self.replay.items()},
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
            shard=int(d["shard"]), owner=str(d["owner"]), watermark=time_of(d["watermark"]), units=units,
            barriers={k: {int(p): int(o) for p, o in b.items()} for k, b in d["barriers"].items()},
            replay={int(p): Mark.from_json(m) for p, m in d["replay"].items()},
        )


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


class RulesStep(SampleIntake):
    """All samples into one store; the owned units advanced by the stream's event-time watermark."""

    def __init__(self, units: Sequence[RuleUnit], shards: int, factory: EngineFactory, *, lateness: float,
                 retention: float, history: float | None = None, owner: str = "",
                 record_groups: Mapping[str, str] | None = None, max_future: float = 600.0,
                 idle_timeout: float = 25.0, series_idle: float | None = None, max_sources: int = 100_000) -> None:
        super().__init__(lateness=lateness, max_future=max_future, idle_timeout=idle_timeout,
                         series_idle=series_idle, max_sources=max_sources)
        self.units = list(units)
        # How far back from a tick the rules read (range + offset + lookback); `retention` adds room.
        self.history = retention if history is None else history
        self.record_groups = dict(record_groups or {})  # recorded metric name -> its group (message key)
        self.shards = shards
        self.factory = factory
        self.retention = retention
        self.owner = owner
        self.buffer = SeriesBuffer()
        self.clocks: dict[int, PartitionClock] = {}
        self.owned: dict[int, dict[str, UnitState]] = {}  # shard -> unit key -> state
        self.watermark = -math.inf
        self.origin: float | None = None  # earliest event time, once every partition has given one
        self.start_floor = -math.inf
        self.failures = 0
        self.behind = False  # `advance` is never cut (see there)

    @property
    def store(self) -> SeriesStore:
        return self.buffer.store

    @property
    def registry(self) -> SeriesRegistry:
        return self.buffer.registry

    @property
    def pruned_before(self) -> float:
        return self.buffer.pruned_before

    @property
    def release_series(self) -> bool:
        return self.buffer.release_series

    @release_series.setter
    def release_series(self, on: bool) -> None:
        self.buffer.release_series = on

    # -- reading

    def start(self, partition: int, mark: Mark) -> None:
        self.clocks[partition] = self.clock_at(mark)
        self.start_floor = max(self.start_floor, mark.max_any)

    def source_future(self) -> dict[str, int]:
        """Samples refused as `future` since start, by source (over the partitions)."""
        return source_future(list(self.clocks.values()))

    def rewind(self, marks: Mapping[int, Mark]) -> None:
        """Forget the store and re-read from `marks`: a shard taken over from an owner far behind this
        process needs history this store no longer holds. Owned units keep their state and wait for
        the watermark to pass their next tick again."""
        self.buffer.reset()
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
        self.read(self.clocks[partition], self.buffer, offset, key, raw, now)

    def ingest_columns(self, partition: int, offset: int, key: bytes | None, cols: SampleColumns,
                       now: float | None = None, source: str | None = None) -> None:
        """`ingest` after decoding: the path a backtest replays stored samples through (series indexes
        from `self.registry`), so the replay makes exactly the live agent's decisions. `source`: the
        message's source (default: its key)."""
        self.read_columns(self.clocks[partition], self.buffer, offset, key, cols, now, source)

    def flush(self) -> None:
        self.buffer.flush()

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
        replay = {p: clock.replay_mark(cutoff) for p, clock in self.clocks.items()}
        return Checkpoint(shard, self.owner, self.watermark, units,
                          {k: st.barrier for k, st in states.items() if k in units}, replay)

    def prune_marks(self) -> None:
        """Keep the newest mark old enough for any checkpoint and everything after it."""
        cutoff = self.watermark - self.retention
        for clock in self.clocks.values():
            clock.prune_marks(cutoff)

    # -- evaluating

    def advance(self, more: Callable[[], bool] | None = None) -> list[UnitOutput]:
        """Move the watermark and every owned unit whose own output this process has read back. Always
        all of it (`more` is not asked, `behind` stays False): a shard's checkpoint holds one watermark
        for all its units, so a call cut between units would checkpoint units as done that are not."""
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
            self.buffer.prune(cutoff)

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


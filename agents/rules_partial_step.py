"""The partial stage of partitioned rule evaluation, without Kafka: the `runtime.partition_state.PartitionStep`
over `wk.samples` whose output is `<app_id>-rule-partials` (DESIGN: design22, "Partials topic record").

Per owned samples partition: a store of its series and its watermark, per source as the full rules step
reads them (`agents.rules_ingest`; rule output, key ``rules/...``, is skipped: recorded metrics are the
merge stage's). Each rule unit's groups tick at multiples of their interval, the first at or after the
partition's earliest sample; once the partition's watermark passes a tick, each rule of the unit's groups
due then is evaluated as far as one partition can (`core.promql.sharding.partial`, plans from
`core.rules.unit_plans`), one record per (unit, tick), ticks in increasing time:

    key = unit key   value = {"v": 1, "t": tick, "groups": {group: [partials_to_json per rule]}}
    key = ~wm        value = {"v": 1, "empty": bool}   (a heartbeat)

Every record says in its `wk-wm` header how far the partition is complete: every record of a tick at or
before it is at or before this one (the partition's watermark on the last record a message made; just
below the next tick on the others), so a reader that has read a record of partition p whose `wk-wm` is
at or after t has every record of p for t. A partition sends no record for a tick before its first (all
its samples are after such a tick): its partials there are those of an empty store.

A heartbeat goes when a message moved the watermark by at least `heartbeat` seconds of event time since
the last record and made no tick record; a partition that has never had a sample says `empty: true`
once, at the runtime's idle tick, so the merge stage does not wait for it.

Deterministic, as the runtime's exactly-once rule needs: what to send is decided message by message (the
evaluation itself runs once per batch: a tick at or before the watermark reads no sample accepted after
the watermark passed it), so any cut of the input into batches makes the same records.

Checkpoint (`runtime.checkpoint.Checkpoint`, meta only): the store is not in it (too big). It holds the
clock, each group's next tick, and a replay mark at least `retention` of event time before the
watermark; a restore rewinds the partition to the mark, and the messages up to the checkpoint's offset
rebuild the store and the clock without sending anything (their records are out already).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from watchkeeper.agents.rules_ingest import (
    PRUNE_EVERY,
    IntakeLimits,
    Mark,
    PartitionClock,
    SampleIntake,
    SeriesBuffer,
    json_time,
    time_of,
)
from watchkeeper.core.checkpoint_frame import CheckpointFrameError
from watchkeeper.core.promql.evaluator import DEFAULT_SUBQUERY_STEP
from watchkeeper.core.promql.series_store import SeriesStore
from watchkeeper.core.promql.sharding import ShardPlan, partial, partials_to_json
from watchkeeper.core.rules.unit_plans import UnitPlans
from watchkeeper.runtime.checkpoint import Checkpoint
from watchkeeper.runtime.partition_state import PartitionProgress, Record, StepOutput

log = logging.getLogger("watchkeeper.rules")

WM_HEADER = "wk-wm"
HEARTBEAT_KEY = b"~wm"


def wm_header(wm: float) -> tuple[str, bytes]:
    """The `wk-wm` header: the float as ASCII (`-inf` when the partition has no watermark yet)."""
    return WM_HEADER, repr(float(wm)).encode()


@dataclass
class _Tick:
    """A (unit, tick) record decided by a message, evaluated at the end of its batch."""

    t: float
    unit: int
    groups: list[str]
    wm: float


@dataclass
class _Beat:
    wm: float
    empty: bool = False


@dataclass
class PartialPartition:
    """One samples partition's state in the partial stage."""

    clock: PartitionClock
    buffer: SeriesBuffer = field(default_factory=SeriesBuffer)
    next_tick: dict[str, float] = field(default_factory=dict)  # group -> next tick (absent: not decided)
    low: float = math.inf  # earliest sample accepted (decides the first ticks)
    sent_wm: float = -math.inf  # `wk-wm` of the last record made
    empty_sent: bool = False
    # The earliest tick that may be due (-inf: look again); derived from the rest, not checkpointed
    next_due: float = -math.inf
    # Replaying after a restore: messages up to this offset rebuild the store only; then the clock is
    # the checkpoint's (`saved_clock`) and the checkpoint itself is what a snapshot writes until then.
    warm_until: int = -1
    saved_clock: dict[str, Any] | None = None
    saved: bytes | None = None

    def emission(self) -> dict[str, Any]:
        return {"next": self.next_tick, "low": None if self.low == math.inf else self.low,
                "sent_wm": json_time(self.sent_wm), "empty_sent": self.empty_sent}

    def load_emission(self, meta: dict[str, Any]) -> None:
        self.next_tick = {str(g): float(t) for g, t in meta["next"].items()}
        self.low = math.inf if meta["low"] is None else float(meta["low"])
        self.sent_wm = time_of(meta["sent_wm"])
        self.empty_sent = bool(meta["empty_sent"])


def clock_facts(clock: PartitionClock) -> dict[str, Any]:
    """All a clock decides with, as JSON (the mark's `state()` plus the partition's newest times)."""
    return {"state": clock.state(), "max_et": json_time(clock.max_et), "max_any": json_time(clock.max_any),
            "first_et": clock.first_et}


def load_clock_facts(clock: PartitionClock, facts: dict[str, Any]) -> None:
    clock.load(facts["state"])
    clock.max_et, clock.max_any = time_of(facts["max_et"]), time_of(facts["max_any"])
    clock.first_et = None if facts["first_et"] is None else float(facts["first_et"])


class PartialStep:
    """The rules' partial stage over the samples partitions this worker owns, a store per partition."""

    def __init__(self, plans: Sequence[UnitPlans], limits: IntakeLimits, *, retention: float, heartbeat: float = 1.0,
                 subquery_step: float = DEFAULT_SUBQUERY_STEP) -> None:
        self.plans = list(plans)
        self.retention = retention  # history kept behind the watermark (`core.rule_units.retention_for`)
        self.heartbeat = heartbeat
        self.subquery_step = subquery_step
        lim = limits
        self.intake = SampleIntake(lateness=lim.lateness, max_future=lim.max_future, idle_timeout=lim.idle_timeout,
                                   series_idle=lim.series_idle, max_sources=lim.max_sources, keep_rule_output=False)
        self.progress: dict[int, PartitionProgress] = {}
        self.parts: dict[int, PartialPartition] = {}
        self.ticks = self.heartbeats = self.failures = 0

    # -- the runtime's PartitionStep

    def restore(self, partition: int, data: bytes | None) -> None:
        """Resume `partition` from `snapshot()`'s bytes: rewound to the checkpoint's replay mark (None or
        unreadable: from the partition's beginning, an unreadable one logged)."""
        if data is not None:
            try:
                cp = Checkpoint.decode(data)
                mark = Mark.from_json(cp.meta["mark"])
                part = PartialPartition(self.intake.clock_at(mark))
                part.load_emission(cp.meta)
                part.warm_until, part.saved_clock, part.saved = cp.offset, dict(cp.meta["clock"]), data
            except (CheckpointFrameError, KeyError, TypeError, ValueError, AttributeError) as exc:
                log.error("rules: unreadable partial-stage checkpoint of partition %d (%s): starting it afresh",
                          partition, exc)
            else:
                self.parts[partition] = part
                self.progress[partition] = PartitionProgress(mark.offset - 1, cp.seq)
                if mark.offset - 1 >= cp.offset:
                    self._warmed(part)
                return
        self.parts[partition] = PartialPartition(self.intake.clock_at(Mark(0, -math.inf, -math.inf)))
        self.progress[partition] = PartitionProgress()

    def snapshot(self, partition: int) -> bytes:
        part = self._part(partition)
        prog = self.progress[partition]
        if part.saved is not None:  # still replaying up to the restored checkpoint: that one holds
            return part.saved
        clock = part.clock
        cutoff = clock.wm - self.retention
        clock.prune_marks(cutoff)
        meta = {"mark": clock.replay_mark(cutoff).to_json(), "clock": clock_facts(clock), **part.emission()}
        return Checkpoint(prog.offset, prog.seq, {}, meta).encode()

    def forget(self, partition: int) -> None:
        self.parts.pop(partition, None)
        self.progress.pop(partition, None)

    def tick(self, partition: int) -> StepOutput:
        """The partition is caught up and quiet: if it never had a sample, say so once (`empty: true`)."""
        part = self._part(partition)
        prog = self.progress[partition]
        out = StepOutput(first_seq=prog.seq + 1)
        if part.saved is None and part.clock.max_et == -math.inf and not part.empty_sent:
            part.empty_sent = True
            out = self._make(part, [_Beat(part.clock.wm, empty=True)])
            out.first_seq = prog.seq + 1
            out.tick_after = prog.offset  # where a replay makes it again (`runtime.exactly_once`)
            prog.seq += len(out.records)
        return out

    def process_records(self, partition: int, records: Sequence[Record], now: float) -> StepOutput:
        """Messages (offset, key, value, processing time) of one partition, in offset order, as one batch;
        those at or before the partition's last applied offset are skipped."""
        part = self._part(partition)
        prog = self.progress[partition]
        intake = self.intake
        before = Counter(intake.rejected())
        accepted = intake.samples
        made: list[_Tick | _Beat] = []
        for offset, key, value, proc in records:
            if offset <= prog.offset:
                continue
            prog.offset = offset
            if part.saved is not None and offset > part.warm_until:
                self._warmed(part)
            low = intake.read(part.clock, part.buffer, offset, key, value, proc)
            if part.saved is not None:
                if offset == part.warm_until:
                    self._warmed(part)
                continue
            if low < part.low:
                part.low, part.next_due = low, -math.inf
            self._decide(part, made)
        out = self._make(part, made)
        self._prune(part)
        out.first_seq = prog.seq + 1
        prog.seq += len(out.records)
        out.rejected = Counter(intake.rejected()) - before
        out.applied = intake.samples - accepted
        return out

    # -- deciding and making records

    def _part(self, partition: int) -> PartialPartition:
        part = self.parts.get(partition)
        if part is None:
            self.restore(partition, None)
            part = self.parts[partition]
        return part

    def _warmed(self, part: PartialPartition) -> None:
        """The replay reached the restored checkpoint: from here on, the live run's decisions."""
        assert part.saved_clock is not None
        if clock_facts(part.clock) != part.saved_clock:
            log.error("rules: a partition's clock rebuilt from its replay mark differs from its checkpoint's; "
                      "going on with the checkpoint's")
            load_clock_facts(part.clock, part.saved_clock)
        part.saved_clock = part.saved = None

    def _decide(self, part: PartialPartition, made: list[_Tick | _Beat]) -> None:
        """The records one message makes: every (unit, tick) its watermark passed, else maybe a heartbeat."""
        wm = part.clock.wm
        if wm <= part.sent_wm:
            return
        due: list[tuple[float, int, str]] = []
        if wm >= part.next_due:
            due, part.next_due = self._due(part, wm), math.inf
            for up in self.plans:
                for g in up.groups:
                    t = part.next_tick.get(g.name)
                    if t is None and part.low < math.inf:
                        t = math.ceil(part.low / g.interval) * g.interval
                    part.next_due = min(part.next_due, math.inf if t is None else t)
        if not due:
            if wm - part.sent_wm >= self.heartbeat:
                made.append(_Beat(wm))
                part.sent_wm = wm
            return
        due.sort(key=lambda d: (d[0], d[1]))  # stable: a unit's groups stay in the unit's order
        ticks: list[_Tick] = []
        for t, i, name in due:
            if ticks and ticks[-1].t == t and ticks[-1].unit == i:
                ticks[-1].groups.append(name)
            else:
                ticks.append(_Tick(t, i, [name], wm))
        for k in range(len(ticks) - 1):  # complete up to just below the next tick's time
            ticks[k].wm = min(wm, math.nextafter(ticks[k + 1].t, -math.inf))
        made.extend(ticks)
        part.sent_wm = wm

    def _due(self, part: PartialPartition, wm: float) -> list[tuple[float, int, str]]:
        """(tick, unit, group) of every group tick at or before `wm` not made yet; the next ones kept."""
        due = []
        for i, up in enumerate(self.plans):
            for g in up.groups:
                t = part.next_tick.get(g.name)
                if t is None:
                    if part.low == math.inf:
                        continue
                    t = math.ceil(part.low / g.interval) * g.interval
                    if t > wm:  # not decided: a sample before it may still come
                        continue
                while t <= wm:
                    due.append((t, i, g.name))
                    t += g.interval
                part.next_tick[g.name] = t
        return due

    def _make(self, part: PartialPartition, made: list[_Tick | _Beat]) -> StepOutput:
        out = StepOutput()
        if not made:
            return out
        part.buffer.flush()
        store = part.buffer.store
        for m in made:
            if isinstance(m, _Beat):
                self.heartbeats += 1
                out.records.append((HEARTBEAT_KEY, orjson.dumps({"v": 1, "empty": m.empty})))
            else:
                self.ticks += 1
                up = self.plans[m.unit]
                groups = {g: [self._partial(p, m.t, store) for p in up.plans[g]] for g in m.groups}
                out.records.append((up.unit.key.encode(), orjson.dumps({"v": 1, "t": m.t, "groups": groups})))
            out.headers.append([wm_header(m.wm)])
        return out

    def _partial(self, plan: ShardPlan, t: float, store: SeriesStore) -> Any:
        """One rule's partials at `t` as JSON. PromQL errors are in the partials (the merge stage fails the
        rule with them); anything else is a bug, logged, and sent as every leaf's error."""
        try:
            return partials_to_json(partial(plan, t, store, self.subquery_step))
        except Exception as exc:  # one rule's failure must not stop the others, nor the worker
            self.failures += 1
            log.exception("rules: partial evaluation of %r at %s failed", plan.expr.text, t)
            return partials_to_json([{"error": f"partial evaluation failed: {exc}"} for _ in plan.leaves])

    def _prune(self, part: PartialPartition) -> None:
        """Drop history no tick will read: older than `retention` before the watermark (every tick still
        due is after it)."""
        cutoff = part.clock.wm - self.retention
        if cutoff - part.buffer.pruned_before >= PRUNE_EVERY:
            part.buffer.prune(cutoff)

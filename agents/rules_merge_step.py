"""The MERGE stage of partitioned rule evaluation without Kafka: partials of the rule units this process
owns, read from ``<app_id>-rule-partials`` (one partition per samples partition), buffered per (tick,
samples partition), merged in partition order once every partition has reported all of that tick, and
evaluated by each unit's `RuleEngine` against the unit's own small store (its recorded series and
``ALERTS``/``ALERTS_FOR_STATE``, which the engine writes). The agent module (`agents.rules_merge_agent`)
only moves bytes between this and the broker.

When is a tick complete? The partial stage writes, per samples partition, the records of every unit due at
a tick in increasing tick order, and a heartbeat (key ``~wm``) when its watermark moved with no tick due.
Every record's ``wk-wm`` header says how far the partition is complete: every record of a tick at or
before it is at or before that record (`agents.rules_partial_step`). Reading one partials partition in
order, a record of tick t also says that every record of a tick before t, and of its own unit up to t, is
read. Tick t of a unit is evaluated when every partition is complete through t for it. A partition that
reported ``empty`` and nothing else does not hold a tick back (as the full mode's "unknown vs empty");
one that reported nothing yet does.

Restart and rebalance: a shard's checkpoint holds its units' engine snapshots and stores, the tick each
unit was advanced to, what the partitions had told (the completeness above) and, per partials partition,
the offset of the first record not yet evaluated. Reading again from there makes the same ticks complete
with the same partials; records of ticks already evaluated and records read twice are ignored, so no
transition is lost or doubled.
"""

from __future__ import annotations

import base64
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from watchkeeper.agents.rules_step import UnitEngine, UnitOutput, unit_output
from watchkeeper.core.checkpoint_frame import CheckpointFrameError
from watchkeeper.core.promql.series_store import SeriesStore
from watchkeeper.core.rule_units import RuleUnit
from watchkeeper.core.rules.eval_failures import EvalFailure
from watchkeeper.core.rules.loader import RuleGroup
from watchkeeper.runtime.checkpoint import Checkpoint as KeyedCheckpoint

log = logging.getLogger("watchkeeper.rules")

HEARTBEAT_KEY = b"~wm"
WM_HEADER = "wk-wm"
PRUNE_EVERY = 60.0  # seconds of event time between prunes of a unit's store

# (group, rule index, tick) -> the leaves of that rule at that tick (`core.rules.engine.LeavesFn`)
LeavesFn = Callable[[RuleGroup, int, float], Any]
# (unit, snapshot or None, origin, leaves of this unit) -> engine
MergeEngineFactory = Callable[[RuleUnit, bytes | None, float, LeavesFn], UnitEngine]
# (group, rule index, the rule's partials of each partition that sent one, in partition order) -> leaves
MergeLeaves = Callable[[str, int, Sequence[Any]], Any]


@dataclass
class PartialsClock:
    """What one partials partition has told so far (see the module docstring)."""

    next_offset: int = 0
    through: float = -math.inf  # every record of a tick at or before this has been read
    units: dict[str, float] = field(default_factory=dict)  # unit key -> newest tick of its records
    empty: bool = False  # reported `empty` ...
    seen: bool = False  # ... and nothing else (False) or something real (True)
    wm: float = -math.inf  # the newest `wk-wm` header (the partition's progress, for logs and lag)

    def complete(self, unit: str) -> float:
        return max(self.through, self.units.get(unit, -math.inf))

    def state(self, units: Sequence[str], complete: bool) -> dict[str, Any]:
        """For a checkpoint whose replay starts at `next_offset` (`complete`): everything; otherwise what
        holds whatever is read again (the records from the replay offset on tell the rest again)."""
        if not complete:
            return {"through": None, "empty": self.empty and not self.seen, "seen": False, "wm": None, "units": {}}
        return {"through": _num(self.through), "empty": self.empty, "seen": self.seen, "wm": _num(self.wm),
                "units": {k: self.units[k] for k in units if k in self.units}}

    def learn(self, d: Mapping[str, Any]) -> None:
        """Add what a checkpoint's clock says: facts about the records before its replay offset, so true
        whatever this reader has read (they only ever add)."""
        self.through = max(self.through, _float(d["through"]))
        self.wm = max(self.wm, _float(d.get("wm")))
        self.seen = self.seen or bool(d["seen"])
        self.empty = self.empty or bool(d["empty"])
        for k, t in d["units"].items():
            self.units[k] = max(self.units.get(k, -math.inf), float(t))


@dataclass
class MergeUnitState:
    unit: RuleUnit
    store: SeriesStore
    engine: UnitEngine | None = None  # None until the unit's first tick is known (fresh unit)
    done: float = -math.inf  # ticks at or before this are evaluated
    # tick -> samples partition -> (offset of its record, group -> the rules' partials as JSON)
    pending: dict[float, dict[int, tuple[int, dict[str, list[Any]]]]] = field(default_factory=dict)
    pruned_before: float = -math.inf


@dataclass
class MergeCheckpoint:
    """One shard's resume point in the merge stage."""

    shard: int
    owner: str
    units: dict[str, bytes]  # engine snapshots
    stores: dict[str, bytes]  # the units' stores (`dump_store`)
    done: dict[str, float]
    replay: dict[int, int]  # partials partition -> offset to read again from
    clocks: dict[int, dict[str, Any]]

    def encode(self) -> bytes:
        states = {k.encode(): v for k, v in self.units.items()}
        states |= {b"store\x00" + k.encode(): v for k, v in self.stores.items()}
        meta = {"shard": self.shard, "owner": self.owner, "mode": "merge",
                "done": {k: _num(v) for k, v in self.done.items()},
                "replay": {str(p): o for p, o in self.replay.items()},
                "clocks": {str(p): c for p, c in self.clocks.items()}}
        return KeyedCheckpoint(states=states, meta=meta).encode()

    @classmethod
    def decode(cls, raw: bytes) -> MergeCheckpoint:
        cp = KeyedCheckpoint.decode(raw)
        m = cp.meta
        if m.get("mode") != "merge":
            raise ValueError("not a merge-stage checkpoint")
        units, stores = {}, {}
        for k, v in cp.states.items():
            if k.startswith(b"store\x00"):
                stores[k[6:].decode()] = v
            else:
                units[k.decode()] = v
        return cls(int(m["shard"]), str(m["owner"]), units, stores,
                   {k: _float(v) for k, v in m["done"].items()},
                   {int(p): int(o) for p, o in m["replay"].items()},
                   {int(p): c for p, c in m["clocks"].items()})

    @property
    def watermark(self) -> float:
        return min(self.done.values(), default=-math.inf)


def decode_merge_or_none(raw: bytes | None) -> MergeCheckpoint | None:
    if not raw:
        return None
    try:
        return MergeCheckpoint.decode(raw)
    except (orjson.JSONDecodeError, CheckpointFrameError, KeyError, TypeError, ValueError):
        return None  # a full-mode checkpoint (or garbage): the shard starts fresh in this mode


def dump_store(store: SeriesStore, since: float) -> bytes:
    """The store's points after `since`, staleness markers bit for bit (raw float64 bytes)."""
    out = [[s.labels, base64.b64encode(s.ts.tobytes()).decode(), base64.b64encode(s.values.tobytes()).decode()]
           for s in store.select([], since, math.inf)]
    return orjson.dumps(out)


def load_store(raw: bytes) -> SeriesStore:
    store = SeriesStore(math.inf)
    for labels, ts, values in orjson.loads(raw):
        name = labels.pop("__name__")
        store.append(name, labels, np.frombuffer(base64.b64decode(ts), dtype=np.float64),
                     np.frombuffer(base64.b64decode(values), dtype=np.float64))
    return store


def start_offsets(partitions: Sequence[int], units: Sequence[RuleUnit],
                  checkpoints: Mapping[int, MergeCheckpoint]) -> dict[int, int]:
    """Where this process starts reading each partials partition: from the beginning while any unit has
    no checkpoint, else the oldest replay offset of any shard."""
    known = {k for cp in checkpoints.values() for k in cp.units}
    if any(u.key not in known for u in units):
        return dict.fromkeys(partitions, 0)
    return {p: min((cp.replay[p] for cp in checkpoints.values() if p in cp.replay), default=0)
            for p in partitions}


class RulesMergeStep:
    """Partials in, owned units advanced as their ticks complete, alerts and recorded samples out."""

    def __init__(self, units: Sequence[RuleUnit], shards: int, factory: MergeEngineFactory,
                 merge_leaves: MergeLeaves, *, retention: float, owner: str = "",
                 record_groups: Mapping[str, str] | None = None) -> None:
        self.units = list(units)
        self.shards = shards
        self.factory = factory
        self.merge_leaves = merge_leaves
        self.retention = retention
        self.owner = owner
        self.record_groups = dict(record_groups or {})
        self.clocks: dict[int, PartialsClock] = {}
        self.owned: dict[int, dict[str, MergeUnitState]] = {}
        self._owner_of: dict[bytes, MergeUnitState] = {}  # unit key (bytes) -> state, owned units only
        self.records = self.skipped = self.ignored = self.bad = self.failures = 0
        self.behind = False  # the last `advance` stopped with complete ticks left
        self._turn = 0  # where the next `advance` starts among the owned units

    # -- reading

    def start(self, partition: int, offset: int) -> None:
        clock = self.clocks.setdefault(partition, PartialsClock())
        clock.next_offset = offset

    def ingest(self, partition: int, offset: int, key: bytes | None, raw: bytes,
               headers: Sequence[tuple[str, bytes]] | None = None) -> None:
        """One record of the partials topic. A record of a unit this process does not own is not decoded."""
        clock = self.clocks.setdefault(partition, PartialsClock())
        if offset < clock.next_offset:
            return
        clock.next_offset = offset + 1
        self.records += 1
        wm = _header_wm(headers)
        if key == HEARTBEAT_KEY:
            try:
                empty = bool(orjson.loads(raw).get("empty"))
            except (orjson.JSONDecodeError, AttributeError):
                self.bad += 1
                return
            if empty:
                clock.empty = True
                return
        clock.seen = True
        if wm is not None:
            clock.wm = max(clock.wm, wm)
            clock.through = max(clock.through, wm)
        if key == HEARTBEAT_KEY:
            return
        st = self._owner_of.get(key or b"")
        if st is None:
            self.skipped += 1  # not decoded: its header said all this process needs of it
            return
        try:
            d = orjson.loads(raw)
            t, groups = float(d["t"]), d["groups"]
            if not isinstance(groups, dict):
                raise TypeError("groups is not an object")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            self.bad += 1
            log.warning("rules merge: unreadable partials record %r at partition %d offset %d", key, partition,
                        offset)
            return
        self._saw_tick(clock, st.unit.key, t)
        if t <= st.done:
            self.ignored += 1  # evaluated already (a replay after a restart or a takeover)
            return
        by_partition = st.pending.setdefault(t, {})
        if partition in by_partition:
            self.ignored += 1  # read twice
            return
        by_partition[partition] = (offset, groups)

    @staticmethod
    def _saw_tick(clock: PartialsClock, unit: str, t: float) -> None:
        clock.through = max(clock.through, math.nextafter(t, -math.inf))
        clock.units[unit] = max(clock.units.get(unit, -math.inf), t)

    def ready(self, unit: str) -> float:
        """The newest time every tick at or before which has all its partials read, for `unit`."""
        marks = [c.complete(unit) for c in self.clocks.values() if c.seen or not c.empty]
        return min(marks) if marks else -math.inf

    # -- owning shards

    def own(self, shard: int, checkpoint: MergeCheckpoint | None) -> dict[int, int]:
        """Take the shard over from its checkpoint (None: its units start fresh). Returns where the reader
        must seek back to (partition -> offset): what the previous owner had not evaluated, or for a unit
        without a checkpoint everything. Records this reader skipped while it did not own the shard are read
        again, and what it had learned from them about completeness is forgotten until they are."""
        states: dict[str, MergeUnitState] = {}
        for unit in self.units:
            if unit.shard(self.shards) != shard:
                continue
            st = MergeUnitState(unit, SeriesStore(math.inf))
            if checkpoint is not None and unit.key in checkpoint.units:
                if unit.key in checkpoint.stores:
                    st.store = load_store(checkpoint.stores[unit.key])
                st.engine = self.factory(unit, checkpoint.units[unit.key], -math.inf, self._leaves_of(st))
                st.done = checkpoint.done.get(unit.key, -math.inf)
            states[unit.key] = st
            self._owner_of[unit.key.encode()] = st
        self.owned[shard] = states
        fresh = checkpoint is None or any(k not in checkpoint.units for k in states)
        again = dict.fromkeys(self.clocks, 0) if fresh else dict(checkpoint.replay) if checkpoint else {}
        seeks = {}
        for p, o in again.items():
            clock = self.clocks.setdefault(p, PartialsClock())
            if o < clock.next_offset:
                self.clocks[p] = clock = PartialsClock(o, empty=clock.empty and not clock.seen, seen=clock.seen)
                seeks[p] = o
            if checkpoint is not None and clock.next_offset == o and p in checkpoint.clocks:
                clock.learn(checkpoint.clocks[p])  # what was true at exactly this offset
        return seeks

    def release(self, shard: int) -> None:
        for key in self.owned.pop(shard, {}):
            self._owner_of.pop(key.encode(), None)

    def checkpoint(self, shard: int) -> MergeCheckpoint:
        states = self.owned.get(shard, {})
        units, stores, done = {}, {}, {}
        for key, st in states.items():
            if st.engine is None:
                continue
            units[key] = st.engine.snapshot()
            stores[key] = dump_store(st.store, st.done - self.retention)
            done[key] = st.done
        replay = {}
        for p, clock in self.clocks.items():
            waiting = [o for st in states.values() for parts in st.pending.values()
                       for q, (o, _) in parts.items() if q == p]
            replay[p] = min(waiting, default=clock.next_offset)
        keys = list(states)
        return MergeCheckpoint(shard, self.owner, units, stores, done, replay,
                               {p: c.state(keys, replay[p] == c.next_offset) for p, c in self.clocks.items()})

    # -- evaluating

    def advance(self, more: Callable[[], bool] | None = None) -> list[UnitOutput]:
        """Evaluate the owned units' complete ticks. `more` (None: no bound) is asked after each tick
        with partials: once it says no, the call returns and `behind` says that ticks may be left (call
        again). A tick evaluated in this call or the next gives the same result (its partials and the
        unit's store are the same), so how the work is cut changes no output; it bounds how long one call
        holds the event loop (the largest unit's tick costs up to a second in bench/rules)."""
        outputs = []
        go_on = more or (lambda: True)
        states = [st for by_key in self.owned.values() for st in by_key.values()]
        if states:  # start after the unit the last cut call stopped at: every unit gets its turn
            turn = self._turn % len(states)
            states = states[turn:] + states[:turn]
        self.behind = False
        for i, st in enumerate(states):
            out, left = self._advance_unit(st, go_on)
            if out is not None:
                outputs.append(out)
            if left or (i + 1 < len(states) and not go_on()):
                self.behind = True
                self._turn += i + 1
                break
        return outputs

    def _advance_unit(self, st: MergeUnitState, more: Callable[[], bool]) -> tuple[UnitOutput | None, bool]:
        """Up to the unit's ready time, one tick with partials at a time while `more()` (ticks without
        partials go with the next tick that has some, or the ready time). Returns the output and whether
        the unit stopped before its ready time."""
        ready = self.ready(st.unit.key)
        if ready <= st.done:
            return None, False
        if st.engine is None:
            if not st.pending:
                return None, False
            origin = min(st.pending)  # the unit's first tick in any partition
            if ready < origin:
                return None, False
            st.engine = self.factory(st.unit, None, origin, self._leaves_of(st))
        stops = sorted(t for t in st.pending if st.done < t <= ready)
        if not stops or stops[-1] < ready:
            stops.append(ready)
        steps = []
        for to in stops:
            try:
                steps.append(st.engine.advance(st.store, to))
            except Exception:  # one unit's failure must not stop the others, nor the worker
                self.failures += 1
                log.exception("rules merge: unit %s failed at %s", st.unit.key, to)
                break
            finally:
                st.done = to
                for t in [t for t in st.pending if t <= to]:
                    del st.pending[t]
                cutoff = to - self.retention
                if cutoff - st.pruned_before >= PRUNE_EVERY:
                    st.store.prune(cutoff)
                    st.pruned_before = cutoff
            if to < ready and not more():
                break
        out = unit_output(st.unit, steps, self.record_groups) if any(x.alerts or x.recorded for x in steps) else None
        return out, st.done < ready

    def _leaves_of(self, st: MergeUnitState) -> LeavesFn:
        def leaves(group: RuleGroup, rule: int, t: float) -> Any:
            parts = st.pending.get(t, {})
            got = []
            for p in sorted(parts):
                rules = parts[p][1].get(group.name)
                if rules is not None and rule < len(rules):
                    got.append(rules[rule])
            return self.merge_leaves(group.name, rule, got)

        return leaves

    def produced(self, unit_key: str, partition: int, offset: int) -> None:
        """Nothing to wait for: this stage never reads its recorded output back (it is in the unit's store)."""

    def take_failures(self) -> list[EvalFailure]:
        return [f for states in self.owned.values() for st in states.values() if st.engine is not None
                for f in st.engine.failures.take()]

    def owned_units(self) -> list[str]:
        return [k for states in self.owned.values() for k in states]


def _header_wm(headers: Sequence[tuple[str, bytes]] | None) -> float | None:
    for name, value in headers or ():
        if name == WM_HEADER:
            try:
                return float(value)
            except ValueError:
                return None
    return None


def _num(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _float(x: float | None) -> float:
    return -math.inf if x is None else float(x)

"""Kafka messages through the anomaly rules, without Kafka: decode `wk.aggregates` / `wk.samples`
values, gather each (rule, series)'s points over a batch of messages, score them a series at a time
(`core.anomaly_scoring`), and hand back the alert events and the changed states to checkpoint.

Input offsets: the step remembers, per input partition, the last offset applied of each input topic; it
is checkpointed beside the states (`marker`), so a resumed partition is read from exactly there
(`gap`), never from Faust's committed offset, which a stop in the middle of a batch can leave past
what the states hold.

A message this cannot read is counted and logged, never fatal: an aggregate that does not validate is
dead-lettered by the ClickHouse sink and a bad samples message by the window agent, so it is not
dead-lettered a second time here.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from core.anomaly_rules import AnomalyRule
from core.anomaly_scoring import AnomalyScorer, StateLoader, state_key
from core.sample_decode import decode_columns
from core.series_registry import SeriesRegistry
from runtime.ownership import Event, Ownership, Phase
from runtime.partition_state import StepOutput
from schemas.aggregates import WindowAggregate
from schemas.codec import SchemaError, decode, encode

log = logging.getLogger("watchkeeper.anomaly")

_SERIES_ID = re.compile(r"^[0-9a-f]{16}$")
_NUMBER = (int, float)


@dataclass
class _Points:
    """One (rule, series)'s points gathered from a batch of messages, in arrival order."""

    labels: dict[str, str]
    partition: int
    ts: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)


@dataclass
class Checkpoint:
    """What to write to the table: every state changed since the last checkpoint, and with them, per
    partition, the offsets they cover. Together they are a consistent point to resume from."""

    states: dict[int, dict[bytes, bytes]] = field(default_factory=dict)  # input partition -> key -> state
    markers: dict[int, bytes] = field(default_factory=dict)  # input partition -> offsets applied (marker)

    def __bool__(self) -> bool:
        return bool(self.states or self.markers)


def marker_key(partition: int) -> bytes:
    """Table key of a partition's offsets marker (state keys start with a group name, never with NUL)."""
    return b"\x00offsets/%d" % partition


class AnomalyStep:
    """The anomaly rules of one worker process over the messages of the partitions it owns."""

    def __init__(self, rules: Sequence[AnomalyRule], load: StateLoader | None = None) -> None:
        self.rules = list(rules)
        self.scorer = AnomalyScorer(load)
        self.registry = SeriesRegistry()
        self.by_input = {kind: [i for i, r in enumerate(self.rules) if r.input == kind]
                         for kind in ("aggregates", "samples")}
        self._aggregate_matches: dict[str, list[int]] = {}  # series id -> rules watching it
        self._sample_matches: dict[int, list[int]] = {}  # registry index -> rules watching it
        self._pending: dict[tuple[int, str], _Points] = {}
        self._partition_of: dict[bytes, int] = {}  # state key -> input partition (changelog partition)
        self.applied: dict[int, dict[str, int]] = {}  # partition -> topic -> last offset applied
        self._moved: set[int] = set()  # partitions whose offsets moved since the last checkpoint
        self.own = Ownership()  # each partition's lifecycle (runtime.ownership), as the window agent's
        self.messages = self.bad = self.points = self.skipped = self.failures = 0

    # -- input offsets

    def resumed(self, partition: int) -> bool:
        return self.own.phase(partition) is Phase.LIVE

    def taken_away(self, partition: int) -> bool:
        """Revoked (and not assigned again): its events still buffered in a batch are ignored."""
        phase = self.own.phase(partition)
        return phase is Phase.RELEASING or (phase is Phase.IDLE and self.own.generation(partition) > 0)

    def revoke(self, partitions: set[int]) -> None:
        """No new input on these partitions from here; `forget` drops them once the work under way ended."""
        for p in partitions:
            if self.own.phase(p) is not Phase.RELEASING:
                self.own.transition(p, Event.REVOKE)

    def resume(self, partition: int, marker: bytes | None) -> None:
        """Start a (re)assigned partition from its checkpointed marker (None: from nothing). The state
        itself is read per series as it is needed (`StateLoader`), so the resume has no reads to wait for."""
        if self.own.phase(partition) is Phase.IDLE:
            self.own.transition(partition, Event.ASSIGN)
        self.own.transition(partition, Event.RESUME)
        offsets: dict[str, int] = {}
        if marker:
            try:
                offsets = {str(k): int(v) for k, v in orjson.loads(marker).items()}
            except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
                log.warning("anomaly: unreadable offsets marker of partition %d; resuming where Faust does",
                            partition)
        self.applied[partition] = offsets
        self.own.transition(partition, Event.RESUMED)

    def gap(self, topic: str, partition: int, offset: int) -> tuple[int, int] | None:
        """Offsets [start, stop) of `topic` to read before `offset` (none when it follows what was applied;
        from the beginning when nothing was: Faust may have committed past messages never checkpointed)."""
        last = self.applied[partition].get(topic, -1)
        if offset <= last + 1:
            return None
        return last + 1, offset

    def add(self, kind: str, topic: str, partition: int, offset: int, key: bytes | None, raw: bytes) -> None:
        """One input message, unless already applied. `kind` is the topic's role: aggregates or samples."""
        if self.taken_away(partition):
            return
        applied = self.applied.setdefault(partition, {})
        if offset <= applied.get(topic, -1):
            return
        applied[topic] = offset
        self._moved.add(partition)
        try:
            if kind == "aggregates":
                self.add_aggregate(partition, raw)
            else:
                self.add_samples(partition, key, raw)
        except Exception:  # a worker never dies on bad data
            self.bad += 1
            log.exception("anomaly: could not read %s[%d]@%d", topic, partition, offset)

    # -- gathering

    def add_aggregate(self, partition: int, raw: bytes) -> None:
        """One `WindowAggregate`: its rules' fields, at the window's end (when it closed, in event time)."""
        self.messages += 1
        agg = _aggregate(raw)
        picked = None if agg is None else self._pick(agg)
        if agg is None or picked is None:
            self.bad += 1
            log.warning("anomaly: unreadable aggregate on partition %d: %s", partition, _why_bad(raw))
            return
        end = float(agg["end"])
        for i, value in picked:
            points = self._points(i, agg["series_id"], agg["labels"], partition)
            points.ts.append(end)
            points.values.append(value)

    def _pick(self, agg: dict[str, Any]) -> list[tuple[int, float]] | None:
        """(rule, value of the field it scores) for every rule watching the series; None if unreadable."""
        sid = agg["series_id"]
        matches = self._aggregate_matches.get(sid)
        if matches is None:
            if not _series_ok(agg):
                return None
            matches = self._aggregate_matches[sid] = [
                i for i in self.by_input["aggregates"] if self.rules[i].selector.matches(agg["name"], agg["labels"])]
        picked = []
        for i in matches:
            value = _field(agg, self.rules[i].field)
            if value is None:
                return None
            picked.append((i, value))
        return picked

    def add_samples(self, partition: int, key: bytes | None, raw: bytes) -> None:
        """One `SampleBatch` (or `Sample`): each watched series' points at their own event times."""
        self.messages += 1
        if not self.by_input["samples"]:
            return
        try:
            cols = decode_columns(raw, self.registry, source=key.decode("utf-8", "replace") if key else "")
        except SchemaError as exc:
            self.bad += 1
            log.warning("anomaly: unreadable samples message on partition %d: %s", partition, exc)
            return
        if not len(cols):
            return
        order = np.argsort(cols.series, kind="stable")
        series, ts, values = cols.series[order], cols.ts[order], cols.values[order]
        cuts = np.flatnonzero(np.diff(series)) + 1
        for a, b in zip([0, *cuts.tolist()], [*cuts.tolist(), len(series)], strict=True):
            s = int(series[a])
            matches = self._sample_matches.get(s)
            if matches is None:
                name, labels = self.registry.names[s], self.registry.labels[s]
                matches = self._sample_matches[s] = [
                    i for i in self.by_input["samples"] if self.rules[i].selector.matches(name, labels)]
            for i in matches:
                points = self._points(i, self.registry.id_hex[s], self.registry.labels[s], partition)
                points.ts += ts[a:b].tolist()
                points.values += values[a:b].tolist()

    def _points(self, rule: int, series: str, labels: dict[str, str], partition: int) -> _Points:
        points = self._pending.get((rule, series))
        if points is None:
            points = self._pending[(rule, series)] = _Points(labels, partition)
            self._partition_of[state_key(self.rules[rule], series)] = partition
        return points

    # -- scoring

    def flush(self) -> StepOutput:
        """Score what was gathered, a series at a time; a failing series is logged and skipped."""
        out = StepOutput()
        pending, self._pending = self._pending, {}
        for (i, series), points in pending.items():
            rule = self.rules[i]
            try:
                res = self.scorer.score(rule, series, points.labels, np.array(points.ts, dtype=np.float64),
                                        np.array(points.values, dtype=np.float64))
            except Exception:  # one series' failure must not stop the others, nor the worker
                self.failures += 1
                log.exception("anomaly: rule %s failed on series %s", rule.key, series)
                continue
            out.applied += res.scored
            self.skipped += res.skipped
            out.records += [(e.fingerprint.encode(), encode(e)) for e in res.events]  # (fingerprint, AlertEvent)
        self.points += out.applied
        return out

    def checkpoint(self) -> Checkpoint:
        """The states changed and the offsets applied since the last checkpoint (call right after `flush`)."""
        cp = Checkpoint()
        for key, value in self.scorer.take_dirty().items():
            cp.states.setdefault(self._partition_of.get(key, 0), {})[key] = value
        cp.markers = {p: orjson.dumps(self.applied[p]) for p in self._moved if p in self.applied}
        self._moved = set()
        return cp

    def assigned(self, partitions: set[int]) -> None:
        for p in partitions:
            self.own.transition(p, Event.ASSIGN)

    def forget(self, partitions: set[int]) -> None:
        """Drop everything about revoked partitions (cached states, offsets, points not yet scored): their
        next owner resumes them from the table's last checkpoint, which is consistent (the agent calls this
        once the batch under way when they were revoked has sent its alerts and written its checkpoint)."""
        self.revoke(partitions)
        self.scorer.forget(lambda key: self._partition_of.get(key) in partitions)
        self._pending = {k: v for k, v in self._pending.items() if v.partition not in partitions}
        for p in partitions:
            self.applied.pop(p, None)
            self._moved.discard(p)
        for key in [k for k, p in self._partition_of.items() if p in partitions]:
            del self._partition_of[key]
        for p in partitions:
            if self.own.phase(p) is Phase.RELEASING:
                self.own.transition(p, Event.RELEASED)


def _aggregate(raw: bytes) -> dict[str, Any] | None:
    """The message as a dict if it can be a window aggregate. Checked by hand, and only what the rules
    read (a pydantic model per window costs more than scoring it); a series' name and labels are
    checked once, when it is first seen (`_series_ok`)."""
    try:
        agg = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if type(agg) is not dict or agg.get("v") != 1 or type(agg.get("series_id")) is not str:
        return None
    end: Any = agg.get("end")
    if type(end) not in _NUMBER or not math.isfinite(end):
        return None
    return agg


def _series_ok(agg: dict[str, Any]) -> bool:
    labels = agg.get("labels")
    return (_SERIES_ID.match(agg["series_id"]) is not None and type(agg.get("name")) is str
            and type(labels) is dict and all(type(v) is str for v in labels.values()))


def _field(agg: dict[str, Any], name: str) -> float | None:
    """The field's value (None when it is missing or not a number: the message is unreadable)."""
    if name == "mean":
        count: Any = agg.get("count")
        total: Any = agg.get("sum")
        if type(count) not in _NUMBER or type(total) not in _NUMBER:
            return None
        return float(total) / float(count) if count else math.nan
    value: Any = agg.get(name, 0.0 if name == "increase" else None)
    return float(value) if type(value) in _NUMBER else None


def _why_bad(raw: bytes) -> str:
    try:
        decode(raw, WindowAggregate)
    except SchemaError as exc:
        return str(exc)
    return "a field the anomaly rules read is missing or not a number"

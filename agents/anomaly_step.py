"""Kafka messages through the anomaly rules, without Kafka: the `runtime.partition_state.PartitionStep` of
one input topic (`wk.aggregates` or `wk.samples`, the rules' `input`). A batch of one partition's
messages is decoded, each (rule, series)'s points in it gathered and scored a series at a time
(`core.anomaly_scoring`); the alert events come back as the step's output for alerts partition p.

Deterministic, as the runtime's exactly-once rule needs: the events of a batch are ordered by the input
offset of the point that made them, then rule and series, so however the input is cut into batches
(live, or a replay after a restart) the same input makes the same events in the same order, with the same
sequence numbers.

State: per input partition, each (rule, series)'s `SeriesAnomaly`, checkpointed as one
`runtime.checkpoint.Checkpoint` (keyed states, the one framing). A restored state is decoded only when its
series is next seen; a snapshot re-encodes only the states changed since the last one.

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

from watchkeeper.core.anomaly_rules import AnomalyRule
from watchkeeper.core.anomaly_scoring import AnomalyScorer
from watchkeeper.core.checkpoint_frame import CheckpointFrameError
from watchkeeper.core.sample_decode import decode_columns
from watchkeeper.core.series_registry import SeriesRegistry
from watchkeeper.runtime.checkpoint import Checkpoint
from watchkeeper.runtime.partition_state import PartitionProgress, Record, StepOutput
from watchkeeper.schemas.aggregates import WindowAggregate
from watchkeeper.schemas.codec import SchemaError, decode, encode

log = logging.getLogger("watchkeeper.anomaly")

_SERIES_ID = re.compile(r"^[0-9a-f]{16}$")
_NUMBER = (int, float)
KINDS = ("aggregates", "samples")


@dataclass
class _Points:
    """One (rule, series)'s points gathered from a batch of messages, in arrival order, with the input
    offset each came from."""

    labels: dict[str, str]
    ts: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)


class AnomalyStep:
    """The anomaly rules on one input topic (`kind`: aggregates or samples) over the partitions this worker
    owns, one state per partition."""

    def __init__(self, rules: Sequence[AnomalyRule], kind: str) -> None:
        if kind not in KINDS:
            raise ValueError(f"anomaly input kind {kind!r}: expected one of {', '.join(KINDS)}")
        self.kind = kind
        self.rules = [r for r in rules if r.input == kind]
        self.registry = SeriesRegistry()
        self._aggregate_matches: dict[str, list[int]] = {}  # series id -> rules watching it
        self._sample_matches: dict[int, list[int]] = {}  # registry index -> rules watching it
        self.progress: dict[int, PartitionProgress] = {}
        self.scorers: dict[int, AnomalyScorer] = {}
        self._saved: dict[int, dict[bytes, bytes]] = {}  # partition -> encoded states of its checkpoint
        self.messages = self.bad = self.points = self.skipped = self.failures = 0

    # -- the runtime's PartitionStep

    def restore(self, partition: int, data: bytes | None) -> None:
        """Resume `partition` from `snapshot()`'s bytes (None: from nothing; unreadable: from nothing, logged,
        the replay from the input's beginning rebuilds it)."""
        cp = Checkpoint()
        if data is not None:
            try:
                cp = Checkpoint.decode(data)
            except CheckpointFrameError as exc:
                log.error("anomaly: unreadable checkpoint of %s partition %d (%s): starting it afresh",
                          self.kind, partition, exc)
        self.progress[partition] = PartitionProgress(cp.offset, cp.seq)
        saved = self._saved[partition] = cp.states
        self.scorers[partition] = AnomalyScorer(load=saved.get)

    def snapshot(self, partition: int) -> bytes:
        prog = self.progress.setdefault(partition, PartitionProgress())
        saved = self._saved.setdefault(partition, {})
        saved.update(self._scorer(partition).take_dirty())
        return Checkpoint(prog.offset, prog.seq, saved).encode()

    def forget(self, partition: int) -> None:
        self.progress.pop(partition, None)
        self.scorers.pop(partition, None)
        self._saved.pop(partition, None)

    def tick(self, partition: int) -> StepOutput:
        """Anomaly rules are evaluated at their points' times only: a quiet partition changes nothing."""
        return StepOutput(first_seq=self.progress[partition].seq + 1)

    def process_records(self, partition: int, records: Sequence[Record], now: float) -> StepOutput:
        """Messages (offset, key, value, processing time) of one partition, in offset order, as one batch;
        those at or before the partition's last applied offset are skipped."""
        prog = self.progress.setdefault(partition, PartitionProgress())
        pending: dict[tuple[int, str], _Points] = {}
        for offset, key, value, _ in records:
            if offset <= prog.offset:
                continue
            prog.offset = offset
            try:
                if self.kind == "aggregates":
                    self._add_aggregate(pending, partition, offset, value)
                else:
                    self._add_samples(pending, partition, offset, key, value)
            except Exception:  # a worker never dies on bad data
                self.bad += 1
                log.exception("anomaly: could not read %s[%d]@%d", self.kind, partition, offset)
        out = self._score(self._scorer(partition), pending)
        out.first_seq = prog.seq + 1
        prog.seq += len(out.records)
        return out

    def _scorer(self, partition: int) -> AnomalyScorer:
        scorer = self.scorers.get(partition)
        if scorer is None:
            scorer = self.scorers[partition] = AnomalyScorer(load=self._saved.setdefault(partition, {}).get)
        return scorer

    # -- gathering

    def _add_aggregate(self, pending: dict[tuple[int, str], _Points], partition: int, offset: int,
                       raw: bytes) -> None:
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
            points = pending.get((i, agg["series_id"]))
            if points is None:
                points = pending[(i, agg["series_id"])] = _Points(agg["labels"])
            points.ts.append(end)
            points.values.append(value)
            points.offsets.append(offset)

    def _pick(self, agg: dict[str, Any]) -> list[tuple[int, float]] | None:
        """(rule, value of the field it scores) for every rule watching the series; None if unreadable."""
        sid = agg["series_id"]
        matches = self._aggregate_matches.get(sid)
        if matches is None:
            if not _series_ok(agg):
                return None
            matches = self._aggregate_matches[sid] = [
                i for i, r in enumerate(self.rules) if r.selector.matches(agg["name"], agg["labels"])]
        picked = []
        for i in matches:
            value = _field(agg, self.rules[i].field)
            if value is None:
                return None
            picked.append((i, value))
        return picked

    def _add_samples(self, pending: dict[tuple[int, str], _Points], partition: int, offset: int,
                     key: bytes | None, raw: bytes) -> None:
        """One `SampleBatch` (or `Sample`): each watched series' points at their own event times."""
        self.messages += 1
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
                    i for i, r in enumerate(self.rules) if r.selector.matches(name, labels)]
            for i in matches:
                sid = self.registry.id_hex[s]
                points = pending.get((i, sid))
                if points is None:
                    points = pending[(i, sid)] = _Points(self.registry.labels[s])
                points.ts += ts[a:b].tolist()
                points.values += values[a:b].tolist()
                points.offsets += [offset] * (b - a)

    # -- scoring

    def _score(self, scorer: AnomalyScorer, pending: dict[tuple[int, str], _Points]) -> StepOutput:
        """Score what was gathered, a series at a time (a failing series is logged and skipped); the events
        ordered by (input offset of their point, rule, series), which no batch boundary changes."""
        out = StepOutput()
        made: list[tuple[int, int, str, int, bytes, bytes]] = []
        for (i, series), points in pending.items():
            rule = self.rules[i]
            try:
                res = scorer.score(rule, series, points.labels, np.array(points.ts, dtype=np.float64),
                                   np.array(points.values, dtype=np.float64))
            except Exception:  # one series' failure must not stop the others, nor the worker
                self.failures += 1
                log.exception("anomaly: rule %s failed on series %s", rule.key, series)
                continue
            out.applied += res.scored
            self.skipped += res.skipped
            if not res.events:
                continue
            at: dict[float, int] = {}
            for t, o in zip(points.ts, points.offsets, strict=True):
                at.setdefault(t, o)  # the point scored at t is the first one at t (later ones are skipped)
            last = points.offsets[-1]
            for n, e in enumerate(res.events):
                made.append((at.get(e.event_time, last), i, series, n, e.fingerprint.encode(), encode(e)))
        made.sort(key=lambda m: m[:4])
        out.records = [(key, value) for *_, key, value in made]  # (fingerprint, AlertEvent)
        self.points += out.applied
        return out


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

"""Kafka messages through the anomaly rules, without Kafka: decode `wk.aggregates` / `wk.samples`
values, gather each (rule, series)'s points over a batch of messages, score them a series at a time
(`core.anomaly_scoring`), and hand back the alert events and the changed states to checkpoint.

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
class StepOutput:
    alerts: list[tuple[bytes, bytes]] = field(default_factory=list)  # (fingerprint, AlertEvent)
    states: dict[int, dict[bytes, bytes]] = field(default_factory=dict)  # input partition -> key -> state
    scored: int = 0


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
        self.messages = self.bad = self.points = self.skipped = self.failures = 0

    # -- gathering

    def add_aggregate(self, partition: int, raw: bytes) -> None:
        """One `WindowAggregate`: its rules' fields, at the window's end (when it closed, in event time)."""
        self.messages += 1
        agg = _aggregate(raw)
        if agg is None:
            self.bad += 1
            log.warning("anomaly: unreadable aggregate on partition %d: %s", partition, _why_bad(raw))
            return
        sid = agg["series_id"]
        matches = self._aggregate_matches.get(sid)
        if matches is None:
            matches = self._aggregate_matches[sid] = [
                i for i in self.by_input["aggregates"] if self.rules[i].selector.matches(agg["name"], agg["labels"])]
        for i in matches:
            value = _field(agg, self.rules[i].field)
            points = self._points(i, sid, agg["labels"], partition)
            points.ts.append(float(agg["end"]))
            points.values.append(value)

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
            out.scored += res.scored
            self.skipped += res.skipped
            out.alerts += [(e.fingerprint.encode(), encode(e)) for e in res.events]
        self.points += out.scored
        for key, value in self.scorer.take_dirty().items():
            out.states.setdefault(self._partition_of.get(key, 0), {})[key] = value
        return out

    def forget(self, partitions: set[int]) -> None:
        """Drop the cached states of revoked partitions: their next owner reads them from the table."""
        self.scorer.forget(lambda key: self._partition_of.get(key) in partitions)
        for key in [k for k, p in self._partition_of.items() if p in partitions]:
            del self._partition_of[key]


def _aggregate(raw: bytes) -> dict[str, Any] | None:
    """The fields the rules read, checked by hand (a pydantic model per window costs more than scoring it)."""
    try:
        agg = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if type(agg) is not dict or agg.get("v") != 1:
        return None
    sid, name, labels = agg.get("series_id"), agg.get("name"), agg.get("labels")
    if type(sid) is not str or not _SERIES_ID.match(sid) or type(name) is not str or type(labels) is not dict:
        return None
    if not all(type(v) is str for v in labels.values()):
        return None
    for key in ("end", "count", "sum", "min", "max", "last", "p50", "p90", "p95", "p99"):
        if type(agg.get(key)) not in _NUMBER:
            return None
    if type(agg.get("increase", 0.0)) not in _NUMBER or not math.isfinite(float(agg["end"])):
        return None
    return agg


def _field(agg: dict[str, Any], name: str) -> float:
    if name == "mean":
        count = agg["count"]
        return float(agg["sum"]) / count if count else math.nan
    return float(agg.get(name, 0.0))


def _why_bad(raw: bytes) -> str:
    try:
        decode(raw, WindowAggregate)
    except SchemaError as exc:
        return str(exc)
    return "a field the anomaly rules read is missing or not a number"

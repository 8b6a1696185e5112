"""Stored samples through the rules agent's own `RulesStep`: what `watchkeeper rules backtest` runs.

The live agent reads `wk.samples` into a `RulesStep` and advances it; the replay feeds the same step
columns read from ClickHouse, in event-time order, as if from one partition, and advances it every
`STEP` seconds of event time. Same units, same engines (`core.rules.engine` via `agents.rules_wiring`),
same ticks (multiples of each group's interval), `for`, `keep_firing_for`, templates and recording rules
feeding later rules: so over samples that arrived in order it gives the alerts the worker gave.

Where it can differ from live, and why: a sample that arrived late live (at or before its partition's
watermark) was not used by the live rules but is in the `samples` table; sample times are stored to the
millisecond; a live engine that started before the replayed range carried state into it (use a warm-up).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from watchkeeper.agents.rules_ingest import Mark
from watchkeeper.agents.rules_step import RulesStep
from watchkeeper.agents.rules_wiring import LoadedRules
from watchkeeper.core.errors import CoreError
from watchkeeper.core.promql.evaluator import ParsedExpr, evaluate, parse
from watchkeeper.core.promql.values import Scalar, VectorSample
from watchkeeper.core.sample_columns import SampleColumns
from watchkeeper.schemas.alerts import AlertEvent
from watchkeeper.schemas.codec import decode

STEP = 300.0  # event-time seconds fed between advances (below the store's slack, so probes see history)


@dataclass
class Probe:
    """An expression sampled every `every` seconds of event time while replaying (the report's charts)."""

    key: str
    expr: str
    every: float
    next_at: float = -math.inf
    parsed: ParsedExpr | None = None
    points: dict[str, tuple[dict[str, str], list[float], list[float]]] = field(default_factory=dict)


class RulesReplay:
    """Feed with `add_series` then `feed` (ascending time across calls); read `alerts` at the end."""

    def __init__(self, loaded: LoadedRules, origin: float, probes: Sequence[Probe] = (),
                 on_progress: Callable[[float], None] | None = None) -> None:
        self.step: RulesStep = loaded.step_factory("backtest")
        self.step.release_series = False  # `add_series` maps stored series to registry indexes once
        self.step.start(0, Mark(0, -math.inf, -math.inf))
        for shard in range(self.step.shards):
            self.step.own(shard, None)
        self.step.origin = origin  # the first tick is the first at or after it, as for a fresh live unit
        self.origin = origin
        self.alerts: list[AlertEvent] = []
        self.probes = list(probes)
        for p in self.probes:
            p.next_at = math.ceil(origin / p.every) * p.every
        self.on_progress = on_progress
        self._sids = np.empty(0, dtype=np.uint64)  # sorted ClickHouse series ids
        self._idx = np.empty(0, dtype=np.int64)  # their registry indexes, same order
        self._offset = 0
        self.unknown = 0  # points of series not added with add_series (skipped)

    def add_series(self, ids: Sequence[int], names: Sequence[str], labels: Sequence[dict[str, str]],
                   kinds: Sequence[str]) -> None:
        """Register stored series (id as in the `samples` table) before feeding their points."""
        reg = self.step.registry
        idx = [reg.index_of(n, lab, k) for n, lab, k in zip(names, labels, kinds, strict=True)]
        sids = np.concatenate([self._sids, np.asarray(ids, dtype=np.uint64)])
        all_idx = np.concatenate([self._idx, np.asarray(idx, dtype=np.int64)])
        order = np.argsort(sids, kind="stable")
        self._sids, self._idx = sids[order], all_idx[order]

    def feed(self, sids: np.ndarray, ts: np.ndarray, values: np.ndarray) -> None:
        """Points ascending in time (at least per series), none older than those fed before."""
        if not len(ts):
            return
        if not len(self._sids):
            self.unknown += len(ts)
            return
        pos = np.minimum(np.searchsorted(self._sids, sids), len(self._sids) - 1)
        known = self._sids[pos] == sids
        if not known.all():
            # A series first stored after the series were listed (the range ends now): left out, counted.
            self.unknown += int((~known).sum())
            pos, ts, values = pos[known], ts[known], values[known]
            if not len(ts):
                return
        series = self._idx[pos]
        cuts = np.searchsorted(ts, np.arange(math.floor(ts[0] / STEP + 1) * STEP, ts[-1], STEP), side="right")
        counter = np.zeros(len(ts), dtype=bool)  # the rules step does not read it
        lo = 0
        for hi in [*cuts.tolist(), len(ts)]:
            if hi > lo:
                self.step.ingest_columns(0, self._offset, None,
                                         SampleColumns(series[lo:hi], ts[lo:hi], values[lo:hi], counter[lo:hi]))
                self._offset += 1
                self._advance()
            lo = hi

    def _advance(self) -> None:
        for out in self.step.advance():
            self.alerts += [decode(raw, AlertEvent) for _, raw in out.alerts]
        wm = self.step.watermark
        for p in self.probes:
            while p.next_at <= wm:
                self._sample(p, p.next_at)
                p.next_at += p.every
        if self.on_progress is not None and math.isfinite(wm):
            self.on_progress(wm)

    def _sample(self, p: Probe, t: float) -> None:
        try:
            if p.parsed is None:
                p.parsed = parse(p.expr)
            value = evaluate(p.parsed, t, self.step.store)
        except CoreError:
            return
        vec = [VectorSample({}, value.value)] if isinstance(value, Scalar) else value
        if not isinstance(vec, list):
            return
        for s in vec:
            if not isinstance(s, VectorSample):
                continue
            key = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            got = p.points.setdefault(key, (dict(s.labels), [], []))
            got[1].append(t)
            got[2].append(s.value)

    @property
    def errors(self) -> list[str]:
        """The kept rule evaluation failures of every engine (the last few of each rule), oldest first."""
        kept = [f for states in self.step.owned.values() for st in states.values() if st.engine is not None
                for f in st.engine.failures.last()]
        return [str(f) for f in sorted(kept, key=lambda f: f.t)]

"""Stored samples and window aggregates through the anomaly agent's own scorer: the `anomaly:` rules of
`watchkeeper rules backtest`.

The live agent (`agents.anomaly_step`) gathers each (rule, series)'s points from `wk.samples` and
`wk.aggregates` and scores them with `core.anomaly_scoring.AnomalyScorer`: one detector and one alert
state per (rule, series), evaluated at each point's event time. The replay gives a scorer of its own the
same points read back from the `samples` and `aggregates` tables, in event-time order per series. Scoring
does not depend on how a series' points are cut into batches (the agent relies on that to resume), and
series do not interact, so the replay gives the transitions the agent gave from the same points.

Where it can differ from live: a detector's state carries its whole past, so the replay learns from the
first point it reads (live: from when the worker first saw the series); samples the backtested rules
record are not in the replay's input (they are computed again by the rules replay, not scored here).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from watchkeeper.agents.anomaly_step import _field as aggregate_field
from watchkeeper.core.anomaly_rules import AnomalyRule
from watchkeeper.core.anomaly_scoring import AnomalyScorer
from watchkeeper.core.promql.series_store import exact_name
from watchkeeper.schemas.alerts import AlertEvent
from watchkeeper.schemas.series_id import format_series_id


class AnomalyReplay:
    """Feed with `add_series` + `feed_samples` and `feed_aggregates` (each ascending in time per series)."""

    def __init__(self, rules: Sequence[AnomalyRule]) -> None:
        self.rules = list(rules)
        self.scorer = AnomalyScorer()
        self.alerts: list[AlertEvent] = []
        self.errors: list[str] = []
        self.scored = 0
        self._sample_rules = [i for i, r in enumerate(self.rules) if r.input == "samples"]
        self._aggregate_rules = [i for i, r in enumerate(self.rules) if r.input == "aggregates"]
        self._series: dict[int, tuple[str, dict[str, str], list[int]]] = {}  # sample series -> hex, labels, rules
        self._aggregate_matches: dict[str, list[int]] = {}  # aggregate series id -> rules

    @property
    def reads_samples(self) -> bool:
        return bool(self._sample_rules)

    def aggregate_names(self) -> list[str] | None:
        """Metric names the aggregate rules watch (None: some selector has no exact name; [] none)."""
        names = [exact_name(self.rules[i].selector.matchers) for i in self._aggregate_rules]
        return None if any(n is None for n in names) else sorted({n for n in names if n is not None})

    def add_series(self, ids: Sequence[int], names: Sequence[str], labels: Sequence[dict[str, str]]) -> None:
        """Stored sample series (ids as in the `samples` table): which rules on samples watch each."""
        for sid, name, lab in zip(ids, names, labels, strict=True):
            rules = [i for i in self._sample_rules if self.rules[i].selector.matches(name, lab)]
            if rules:
                self._series[int(sid)] = (format_series_id(int(sid)), dict(lab), rules)

    def feed_samples(self, sids: np.ndarray, ts: np.ndarray, values: np.ndarray) -> None:
        """Points of many series, ascending in time per series (as `samples` slices are read)."""
        if not self._series or not len(ts):
            return
        order = np.argsort(sids, kind="stable")
        sids, ts, values = sids[order], ts[order], values[order]
        cuts = np.flatnonzero(np.diff(sids)) + 1
        for a, b in zip([0, *cuts.tolist()], [*cuts.tolist(), len(sids)], strict=True):
            known = self._series.get(int(sids[a]))
            if known is not None:
                for i in known[2]:
                    self._score(i, known[0], known[1], ts[a:b], values[a:b])

    def feed_aggregates(self, rows: Iterable[dict[str, Any]]) -> None:
        """Window aggregates in the shape of a `wk.aggregates` message (`series_id` as 16 hex digits,
        `end`, the fields), ascending in `end` per series: each watching rule scores its field at `end`."""
        points: dict[tuple[int, str], tuple[dict[str, str], list[float], list[float]]] = {}
        for agg in rows:
            sid = agg["series_id"]
            rules = self._aggregate_matches.get(sid)
            if rules is None:
                rules = self._aggregate_matches[sid] = [
                    i for i in self._aggregate_rules if self.rules[i].selector.matches(agg["name"], agg["labels"])]
            for i in rules:
                value = aggregate_field(agg, self.rules[i].field)
                if value is None:
                    self.errors.append(f"rule {self.rules[i].key}: window of {sid} ending {agg['end']} "
                                       f"has no number in field {self.rules[i].field!r}")
                    continue
                got = points.setdefault((i, sid), (agg["labels"], [], []))
                got[1].append(float(agg["end"]))
                got[2].append(value)
        for (i, sid), (labels, ts, values) in points.items():
            self._score(i, sid, labels, np.asarray(ts, dtype=np.float64), np.asarray(values, dtype=np.float64))

    def _score(self, i: int, series: str, labels: dict[str, str], ts: np.ndarray, values: np.ndarray) -> None:
        rule = self.rules[i]
        try:
            res = self.scorer.score(rule, series, labels, ts, values)
        except Exception as exc:  # as the agent: one series' failure is reported, the others go on
            self.errors.append(f"rule {rule.key} on series {series}: {exc}")
            return
        self.scored += res.scored
        self.alerts += res.events

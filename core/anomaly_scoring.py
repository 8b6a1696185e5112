"""Anomaly rules evaluated on scored points: one detector and one alert state per (rule, series).

Why per series: a rule's series arrive at their own event times (a partition, a source, a window each),
so a rule is evaluated for one series at the event time of each of that series' scored points: the
series is active when the point's score is at or above the threshold (value = the score), and the shared
alert state machine (`core.alert_state.AlertRuleState`) turns that into pending -> firing after `for`
and resolved when a point scores below the threshold again (after `keep_firing_for`). One alert state
per (rule, series) keeps one series' points from resolving another series' alert.

Points of a series are scored a batch at a time (the detectors are vectorised: one point alone costs
about as much as a few thousand in a batch), and only the points where an alert can change state go
through the state machine: a point under the threshold of a series with no open alert changes nothing.
Points at or before the newest point already scored for the series are skipped, so input read again
after a restart is not scored twice, and detectors only ever see time moving forward.

Nothing here reads a clock or does I/O: `load` fetches a saved state (bytes) for a key, `dirty` says
which states changed since the last `take_dirty()` so the caller can checkpoint them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from watchkeeper.core.alert_state import Alert, AlertRuleState, AlertState
from watchkeeper.core.anomaly_rules import AnomalyRule
from watchkeeper.core.checkpoint_frame import CheckpointFrameError, frame, unframe
from watchkeeper.core.detectors import Detector, detector_from_bytes
from watchkeeper.core.detectors.state_codec import StateDecodeError
from watchkeeper.core.errors import CoreError
from watchkeeper.core.rules.templates import TemplateData, alert_labels, expand
from watchkeeper.schemas.alerts import AlertEvent

StateLoader = Callable[[bytes], bytes | None]


class AnomalyStateError(CoreError):
    """A saved (rule, series) state that cannot be read back; the series starts afresh."""


@dataclass
class SeriesAnomaly:
    """What one rule knows about one series: its detector, its alert, the newest point it has scored."""

    detector: Detector
    alerts: AlertRuleState
    last_ts: float = -math.inf
    scored: int = 0

    def to_bytes(self) -> bytes:
        return frame({
            "last_ts": self.last_ts if math.isfinite(self.last_ts) else None,
            "scored": self.scored,
            "alerts": [a.to_json() for a in self.alerts.active.values()],
        }, self.detector.to_bytes())

    @classmethod
    def from_bytes(cls, raw: bytes, rule: AnomalyRule) -> SeriesAnomaly:
        try:
            framed = unframe(raw)
            head = framed.head
            detector = detector_from_bytes(raw[framed.body_at:])
            state = _rule_state(rule)
            for a in head["alerts"]:
                alert = Alert.from_json(a)
                state.active[alert.fingerprint] = alert
            last = head["last_ts"]
            return cls(detector, state, -math.inf if last is None else float(last), int(head["scored"]))
        except (StateDecodeError, CheckpointFrameError, KeyError, TypeError, ValueError) as exc:
            raise AnomalyStateError(f"unreadable anomaly state for rule {rule.key!r}: {exc}") from exc


@dataclass
class ScoreResult:
    events: list[AlertEvent] = field(default_factory=list)
    scored: int = 0
    skipped: int = 0  # points at or before the series' newest scored point, or not finite


def state_key(rule: AnomalyRule, series: str) -> bytes:
    """Table key of a (rule, series) state."""
    return f"{rule.key}\x00{series}".encode()


class AnomalyScorer:
    """The states of every (rule, series) this process has seen, loaded on first use."""

    def __init__(self, load: StateLoader | None = None) -> None:
        self.load = load
        self.states: dict[bytes, SeriesAnomaly] = {}
        self.dirty: set[bytes] = set()
        self.unreadable = 0

    def state(self, rule: AnomalyRule, series: str) -> SeriesAnomaly:
        key = state_key(rule, series)
        st = self.states.get(key)
        if st is None:
            raw = self.load(key) if self.load is not None else None
            if raw:
                try:
                    st = SeriesAnomaly.from_bytes(raw, rule)
                except AnomalyStateError:
                    self.unreadable += 1
            if st is None:
                st = SeriesAnomaly(rule.new_detector(), _rule_state(rule))
            self.states[key] = st
        return st

    def forget(self, keys: Callable[[bytes], bool]) -> None:
        """Drop cached states (their partition was revoked: the next owner loads them from the table)."""
        for key in [k for k in self.states if keys(k)]:
            del self.states[key]
            self.dirty.discard(key)

    def take_dirty(self) -> dict[bytes, bytes]:
        """The states changed since the last call, as bytes to checkpoint."""
        out = {k: self.states[k].to_bytes() for k in self.dirty if k in self.states}
        self.dirty.clear()
        return out

    def score(self, rule: AnomalyRule, series: str, labels: Mapping[str, str], ts: np.ndarray,
              values: np.ndarray) -> ScoreResult:
        """Score one series' new points (in arrival order) and evaluate the rule at each point's time."""
        out = ScoreResult()
        key = state_key(rule, series)
        st = self.states.get(key) or self.state(rule, series)
        if len(ts) == 1:  # the usual live case (one window per series per batch): no array work
            t, v = float(ts[0]), float(values[0])
            if not (t > st.last_ts and math.isfinite(t) and math.isfinite(v)):
                out.skipped = 1
                return out
            score = st.detector.score_one(t, v)
            st.last_ts = t
            st.scored += 1
            out.scored = 1
            self.dirty.add(key)
            if score >= rule.threshold or _open(st.alerts):
                out.events += self._evaluate(rule, st, labels, [t], [score])
            return out
        keep = np.isfinite(ts) & np.isfinite(values)
        if len(ts):
            # Strictly after the newest point so far, and after every earlier point of this batch.
            prev = np.maximum.accumulate(np.concatenate(([st.last_ts], np.where(keep, ts, -math.inf))))[:-1]
            keep &= ts > prev
        out.skipped = int(len(ts) - keep.sum())
        if out.skipped:
            ts, values = ts[keep], values[keep]
        if not len(ts):
            return out
        scores = st.detector.score_batch(ts, values)
        st.last_ts = float(ts[-1])
        st.scored += len(ts)
        out.scored = len(ts)
        self.dirty.add(key)
        if (scores >= rule.threshold).any() or _open(st.alerts):
            out.events += self._evaluate(rule, st, labels, ts.tolist(), scores.tolist())
        return out

    @staticmethod
    def _evaluate(rule: AnomalyRule, st: SeriesAnomaly, labels: Mapping[str, str], ts: list[float],
                  scores: list[float]) -> list[AlertEvent]:
        """The alert state machine at each point that can change it (hot, or while an alert is open)."""
        events: list[AlertEvent] = []
        base = {k: v for k, v in labels.items() if k != "__name__"}
        for now, score in zip(ts, scores, strict=True):
            hot = score >= rule.threshold
            if not hot and not _open(st.alerts):
                continue
            results = [(_alert_labels(rule, base, score), score)] if hot else []
            events += st.alerts.evaluate(now, results, _annotator(rule))
        return events


def _rule_state(rule: AnomalyRule) -> AlertRuleState:
    return AlertRuleState(rule.alert, rule.hold, rule.keep_firing_for, source="anomaly")


def _open(state: AlertRuleState) -> bool:
    return any(a.state is not AlertState.INACTIVE for a in state.active.values())


def _alert_labels(rule: AnomalyRule, base: dict[str, str], score: float) -> dict[str, str]:
    return alert_labels(base, rule.labels, TemplateData(base, score, {}), rule.alert)


def _annotator(rule: AnomalyRule) -> Callable[[Mapping[str, str], float], dict[str, str]] | None:
    if not rule.annotations:
        return None

    def annotate(labels: Mapping[str, str], value: float) -> dict[str, str]:
        data = TemplateData(labels, value, {})
        return {k: expand(t, data) for k, t in rule.annotations.items()}

    return annotate


"""NAB-style scoring, written from the published rules (Lavin and Ahmad, "Evaluating real-time anomaly
detection algorithms: the Numenta Anomaly Benchmark", 2015), not from NAB's code or data.

Why a scorer of our own: the issue's held-out judge scores this way, and a detector that looks good on
point-wise precision/recall can still lose here (a run of 50 flagged points for one incident costs 49
false positives outside the window, or counts once inside it). Rules:

- a labelled window is detected by its FIRST point with score >= threshold; it earns
  A_TP * sigma(y), y = (i - end) / length in [-1, 0), sigma(y) = 2 / (1 + e^{5y}) - 1, i.e. ~0.987 at
  the window's first point, 0 at its end; later points inside the window count for nothing;
- a window without a detection costs A_FN;
- every flagged point outside all windows costs A_FP: fully when no window precedes it, weighted by
  sigma((i - previous window end) / previous window length) (negative, from ~0 just after a window to
  -1 far from it) when one does;
- the first ``PROBATION`` (15 %) of every series is not scored (detectors learn on it);
- ONE threshold for the whole corpus, per detector and per profile (the one with the best total);
- normalised: 100 * (S - S_null) / (S_perfect - S_null); the null detector never fires
  (S_null = -A_FN * windows), the perfect one fires on every window's first point.

Profiles: standard (A_TP 1, A_FP 0.11, A_FN 1), low FP (A_FP 0.22), low FN (A_FN 2).

Point labels (corpora that mark anomalous points, not windows) become windows as NAB builds them: one
window per labelled event (a run of consecutive labelled points), of total size 10 % of the series
divided by the number of events, centred on the event; overlapping windows are merged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PROBATION = 0.15


@dataclass(frozen=True)
class Profile:
    name: str
    a_tp: float
    a_fp: float
    a_fn: float


PROFILES = (Profile("standard", 1.0, 0.11, 1.0), Profile("low FP", 1.0, 0.22, 1.0),
            Profile("low FN", 1.0, 0.11, 2.0))


def sigma(y: np.ndarray | float) -> np.ndarray:
    return np.asarray(2.0 / (1.0 + np.exp(5.0 * np.asarray(y, dtype=np.float64))) - 1.0)


def windows_from_points(labels: np.ndarray, fraction: float = 0.10) -> list[tuple[int, int]]:
    """NAB's windows around point labels: [start, end) indices, merged where they overlap."""
    n = len(labels)
    idx = np.flatnonzero(labels)
    if not len(idx):
        return []
    breaks = np.flatnonzero(np.diff(idx) > 1)
    starts = np.concatenate(([idx[0]], idx[breaks + 1]))
    ends = np.concatenate((idx[breaks], [idx[-1]])) + 1
    size = max(int(fraction * n / len(starts)), 1)
    out: list[tuple[int, int]] = []
    for a, b in zip(starts, ends, strict=True):
        centre = (a + b) // 2
        lo, hi = max(0, min(a, centre - size // 2)), min(n, max(b, centre + (size - size // 2)))
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((int(lo), int(hi)))
    return out


def windows_from_segments(labels: np.ndarray) -> list[tuple[int, int]]:
    """Windows = the labelled runs themselves (corpora that label whole anomalous intervals)."""
    idx = np.flatnonzero(labels)
    if not len(idx):
        return []
    breaks = np.flatnonzero(np.diff(idx) > 1)
    starts = np.concatenate(([idx[0]], idx[breaks + 1]))
    ends = np.concatenate((idx[breaks], [idx[-1]])) + 1
    return [(int(a), int(b)) for a, b in zip(starts, ends, strict=True)]


@dataclass
class Counts:
    """At one or many thresholds (arrays): what the profile weights multiply."""

    tp_reward: np.ndarray  # sum of sigma over detected windows
    fn: np.ndarray
    fp_weight: np.ndarray  # sum of (negative) FP weights
    tp: np.ndarray
    fp_points: np.ndarray
    windows: int

    def raw(self, p: Profile) -> np.ndarray:
        return p.a_tp * self.tp_reward - p.a_fn * self.fn + p.a_fp * self.fp_weight

    def normalised(self, p: Profile) -> np.ndarray:
        if not self.windows:
            return np.zeros_like(self.tp_reward)
        null, perfect = -p.a_fn * self.windows, p.a_tp * self.windows * float(sigma(-1.0))
        return 100.0 * (self.raw(p) - null) / (perfect - null)

    def at(self, i: int) -> Counts:
        return Counts(self.tp_reward[i:i + 1], self.fn[i:i + 1], self.fp_weight[i:i + 1], self.tp[i:i + 1],
                      self.fp_points[i:i + 1], self.windows)


class SeriesScorer:
    """One series' scores against its windows, precomputed so that any number of thresholds is cheap:
    per window the running maximum (its first point >= t is a binary search), outside the windows the
    flagged points' weights sorted by score (the cost at t is a cumulative sum)."""

    def __init__(self, scores: np.ndarray, windows: list[tuple[int, int]]) -> None:
        n = len(scores)
        start = int(PROBATION * n)
        scored = [(max(a, start), b) for a, b in windows if b > start]
        self.windows = len(scored)
        inside = np.zeros(n, dtype=bool)
        self.win_max: list[tuple[np.ndarray, int]] = []
        for a, b in scored:
            inside[a:b] = True
            self.win_max.append((np.maximum.accumulate(scores[a:b]), b - a))
        out = np.flatnonzero(~inside)
        out = out[out >= start]
        w = np.full(len(out), -1.0)
        if scored and len(out):
            ends = np.array([b for _, b in scored], dtype=np.int64)
            lens = np.array([b - a for a, b in scored], dtype=np.int64)
            prev = np.searchsorted(ends, out, side="right") - 1
            has = prev >= 0
            if has.any():
                w[has] = sigma((out[has] - ends[prev[has]] + 1) / lens[prev[has]])
        order = np.argsort(-scores[out], kind="stable")
        self.out_scores = scores[out][order]  # descending
        self.out_cum_w = np.concatenate(([0.0], np.cumsum(w[order])))

    def counts(self, thresholds: np.ndarray) -> Counts:
        t = np.asarray(thresholds, dtype=np.float64)
        tp_reward, tp = np.zeros(len(t)), np.zeros(len(t))
        for run_max, length in self.win_max:
            first = np.searchsorted(run_max, t, side="left")  # first index with running max >= t
            hit = first < length
            tp += hit
            tp_reward += np.where(hit, sigma((first - length) / length), 0.0)
        k = np.searchsorted(-self.out_scores, -t, side="right")  # points with score >= t
        return Counts(tp_reward, self.windows - tp, self.out_cum_w[k], tp, k.astype(np.float64), self.windows)


def corpus_counts(scorers: list[SeriesScorer], thresholds: np.ndarray) -> Counts:
    t = np.asarray(thresholds, dtype=np.float64)
    z = np.zeros(len(t))
    total = Counts(z.copy(), z.copy(), z.copy(), z.copy(), z.copy(), 0)
    for s in scorers:
        c = s.counts(t)
        total.tp_reward += c.tp_reward
        total.fn += c.fn
        total.fp_weight += c.fp_weight
        total.tp += c.tp
        total.fp_points += c.fp_points
        total.windows += c.windows
    return total


def candidate_thresholds(all_scores: list[np.ndarray]) -> np.ndarray:
    """The distinct scores of scored points (any other threshold flags the same points as one of them):
    the highest 3000 all, below them 1000 spread evenly, plus infinity (never fire)."""
    u = np.unique(np.concatenate([s[int(PROBATION * len(s)):] for s in all_scores] + [np.array([np.inf])]))
    if len(u) > 4000:
        u = np.concatenate((u[np.linspace(0, len(u) - 3001, 1000).astype(np.int64)], u[-3000:]))
    return u


def best(scorers: list[SeriesScorer], all_scores: list[np.ndarray], profile: Profile) -> tuple[float, Counts]:
    """The one global threshold with the best normalised score under ``profile``, and its counts."""
    t = candidate_thresholds(all_scores)
    c = corpus_counts(scorers, t)
    i = int(np.argmax(c.normalised(profile)))
    return float(t[i]), c.at(i)

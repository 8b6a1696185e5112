"""Evaluate every detector on the labelled corpus with a NAB-style score and ONE global threshold each.

    PYTHONPATH=. python bench/anomaly/evaluate.py            # table on stdout, JSON in results.json

Scoring (Numenta Anomaly Benchmark, standard profile A_TP=1, A_FP=0.11, A_FN=1):
- a labelled window is detected by its FIRST point with score >= threshold; it earns
  A_TP * sigmoid(y), y = (i - end) / length in [-1, 0): ~0.99 at the window's start, 0 at its end;
- a missed window costs A_FN;
- every flagged point outside windows costs A_FP, weighted by the same sigmoid of its distance after the
  previous window (a late echo of an incident costs less than an alarm out of nowhere);
- the first 15% of each series is a probation period where nothing is counted (all detectors learn);
- normalised: 100 * (S - S_null) / (S_perfect - S_null), S_null = the detector that never fires.
One threshold per detector for the whole corpus, the one with the best NAB score among 1 - 10^-k,
k = 0.5, 0.75, ..., 8, and 0.30, 0.31, ..., 0.98. Precision and recall are by events: a window is a true
positive if detected; runs of consecutive flagged points outside windows are false-positive events.
"Delay" is the median number of points from a window's start to its first detection.
"""

from __future__ import annotations

import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from corpus import Series, corpus

from watchkeeper.core.detectors import DETECTORS, ENSEMBLE_MEMBERS, Detector, make_detector

A_TP, A_FP, A_FN = 1.0, 0.11, 1.0
PROBATION = 0.15
# calibrated scores live near 1 (a log grid); the `event` detector's absolute scale z / (z + 3) does not
THRESHOLDS = [1 - 10.0**-k for k in np.arange(0.5, 8.01, 0.25)] + [1.0] + [float(t) for t in np.arange(0.3, 0.99, 0.01)]
OFFERED = ["zscore", "event", "robust", "seasonal", "levelshift", "calibrated", "ensemble"]
ABLATION = "calibrated-without-flatline"
# `calibrated`'s flat-line member is scored alone too, and `calibrated` without it, for the record
ORDER = OFFERED + list(ENSEMBLE_MEMBERS) + [ABLATION]


def label(name: str) -> str:
    if name == ABLATION:
        return "calibrated without its flat-line member (ablation)"
    return name if name in DETECTORS else f"{name} (member of calibrated, not offered alone)"


def new_detector(name: str) -> Detector:
    if name != ABLATION:
        return make_detector(name)
    return make_detector("calibrated", flatline=0)


def sigmoid(y: np.ndarray | float) -> np.ndarray | float:
    return 2.0 / (1.0 + np.exp(5.0 * np.asarray(y))) - 1.0


def score_series(s: Series, scores: np.ndarray, threshold: float) -> dict[str, float]:
    n = len(scores)
    flagged = scores >= threshold
    flagged[: int(PROBATION * n)] = False
    inside = np.zeros(n, dtype=bool)
    total = 0.0
    tp = 0
    delays = []
    for a, b in s.windows:
        inside[a:b] = True
        hits = np.flatnonzero(flagged[a:b])
        if len(hits):
            tp += 1
            delays.append(int(hits[0]))
            total += A_TP * float(sigmoid((hits[0] - (b - a)) / (b - a)))
        else:
            total -= A_FN
    fp_idx = np.flatnonzero(flagged & ~inside)
    if len(fp_idx):
        ends = np.array([b for _, b in s.windows])
        lens = np.array([b - a for a, b in s.windows])
        prev = np.searchsorted(ends, fp_idx, side="right") - 1
        w = np.full(len(fp_idx), -1.0)
        has = prev >= 0
        w[has] = sigmoid((fp_idx[has] - ends[prev[has]] + 1) / lens[prev[has]])
        total += A_FP * float(w.sum())
    fp_events = int(len(fp_idx) and 1 + np.count_nonzero(np.diff(fp_idx) > 5))
    return {"raw": total, "tp": tp, "fn": len(s.windows) - tp, "fp_events": fp_events, "fp_points": len(fp_idx),
            "delays": delays}


def evaluate(series: list[Series], all_scores: list[np.ndarray], threshold: float) -> dict[str, float]:
    agg: dict[str, float] = defaultdict(float)
    delays: list[int] = []
    for s, sc in zip(series, all_scores, strict=True):
        r = score_series(s, sc, threshold)
        for k in ("raw", "tp", "fn", "fp_events", "fp_points"):
            agg[k] += r[k]
        delays += r["delays"]
    windows = agg["tp"] + agg["fn"]
    null, perfect = -A_FN * windows, A_TP * windows
    prec = agg["tp"] / max(agg["tp"] + agg["fp_events"], 1)
    rec = agg["tp"] / max(windows, 1)
    return {"threshold": threshold, "nab": 100 * (agg["raw"] - null) / (perfect - null), "precision": prec,
            "recall": rec, "f1": 2 * prec * rec / max(prec + rec, 1e-12),
            "delay": float(np.median(delays)) if delays else float("nan"),
            "fp_events": agg["fp_events"], "windows": windows}


def best_threshold(series: list[Series], all_scores: list[np.ndarray]) -> dict[str, float]:
    return max((evaluate(series, all_scores, t) for t in THRESHOLDS), key=lambda r: r["nab"])


def run_detector(name: str, series: list[Series]) -> list[np.ndarray]:
    return [new_detector(name).score_batch(s.ts, s.values) for s in series]


def main() -> None:
    t0 = time.perf_counter()
    series = corpus()
    results: dict[str, dict[str, float]] = {}
    per_kind: dict[str, dict[str, float]] = {}
    per_source: dict[str, dict[str, float]] = {}
    for name in ORDER:
        scores = run_detector(name, series)
        best = best_threshold(series, scores)
        results[name] = best
        kinds = sorted({k for s in series for k in s.kinds})
        per_kind[name] = {}
        for kind in kinds:
            sub = [(Series(s.name, s.source, s.ts, s.values, [w for w, k in zip(s.windows, s.kinds, strict=True)
                                                               if k == kind], [kind]), sc)
                   for s, sc in zip(series, scores, strict=True) if kind in s.kinds]
            hit = sum(score_series(s, sc, best["threshold"])["tp"] for s, sc in sub)
            per_kind[name][kind] = hit / max(sum(len(s.windows) for s, _ in sub), 1)
        per_source[name] = {}
        for source in ("synthetic", "machine"):
            idx = [i for i, s in enumerate(series) if s.source == source]
            if idx:
                per_source[name][source] = evaluate([series[i] for i in idx], [scores[i] for i in idx],
                                                    best["threshold"])["nab"]
    print(f"corpus: {len(series)} series, {sum(len(s.values) for s in series)} points, "
          f"{int(results['zscore']['windows'])} labelled windows; one threshold per detector\n")
    print("| detector | threshold | precision | recall | F1 | median delay (points) | NAB score | NAB synthetic "
          "| NAB machine |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in ORDER:
        r = results[name]
        src = per_source[name]
        print(f"| {label(name)} | {r['threshold']:.8g} | {r['precision']:.2f} | {r['recall']:.2f} | {r['f1']:.2f} | "
              f"{r['delay']:.0f} | {r['nab']:.1f} | {src.get('synthetic', float('nan')):.1f} | "
              f"{src.get('machine', float('nan')):.1f} |")
    kinds = sorted(next(iter(per_kind.values())))
    print("\nrecall by anomaly kind at each detector's threshold:\n")
    print("| detector | " + " | ".join(kinds) + " |")
    print("|---|" + "---|" * len(kinds))
    for name in ORDER:
        print(f"| {label(name)} | " + " | ".join(f"{per_kind[name][k]:.2f}" for k in kinds) + " |")
    Path(__file__).with_name("results.json").write_text(json.dumps(
        {"results": results, "recall_by_kind": per_kind, "nab_by_source": per_source}, indent=1))
    print(f"\n({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()

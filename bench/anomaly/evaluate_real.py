"""NAB-style evaluation of every detector on public labelled REAL-world corpora (see real_corpora.py).

    sh bench/anomaly/fetch_real.sh                                  # once: the corpora, ~45 MB
    PYTHONPATH=. python bench/anomaly/evaluate_real.py              # ~1 min; Markdown tables on stdout
    PYTHONPATH=. python bench/anomaly/evaluate_real.py ensemble robust   # only these detectors
    PYTHONPATH=. python bench/anomaly/evaluate_real.py event:holdoff=20  # a detector with parameters

Scores (nab.py): standard / low FP / low FN profiles, 15 % probation, ONE threshold per detector, per
profile and per corpus, normalised so that never firing = 0 and perfect = 100. Every table has the
reference rolling z-score (mean and standard deviation of the previous 288 points, score |z| / (|z| + 3)),
every member of the ensemble alone (`event`, `robust`), and the ensemble without each member (`event`'s
test: its z set to 0; robust, recalibrated: then it is `event`) or with each consensus member it leaves out.
Detectors are run exactly as `watchkeeper detect` runs them: one `score_batch` over the whole series.
Results also go to bench/results/anomaly_real.json.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from nab import PROFILES, SeriesScorer, best, corpus_counts
from real_corpora import RealSeries, load_all

from watchkeeper.core.detectors import DEFAULT_DETECTOR, DETECTORS, coerce_params, make_detector
from watchkeeper.core.detectors.calibrated import CalibratedDetector
from watchkeeper.core.detectors.ensemble import EnsembleDetector

REF = "reference z-score (288)"
CORPORA = ("mscloud-a", "mscloud-b", "skab")
LONG = "mscloud-long"


def reference_zscore(values: np.ndarray, window: int = 288) -> np.ndarray:
    """The issue's yardstick: z of x[t] against the mean/std of x[t-288 .. t-1]; |z| / (|z| + 3)."""
    x = np.asarray(values, dtype=np.float64)
    out = np.zeros(len(x))
    if len(x) <= window:
        return out
    cs = np.concatenate(([0.0], np.cumsum(x)))
    cs2 = np.concatenate(([0.0], np.cumsum(x * x)))
    t = np.arange(window, len(x))
    mean = (cs[t] - cs[t - window]) / window
    var = np.maximum((cs2[t] - cs2[t - window]) / window - mean * mean, 0.0)
    std = np.sqrt(var)
    z = np.where(std > 0, np.abs(x[t] - mean) / np.where(std > 0, std, 1.0), 0.0)
    out[window:] = z / (z + 3.0)
    return out


def category(s: RealSeries) -> str:
    """mscloud: the domain; skab: the kind of experiment (valve1, valve2, other)."""
    return s.name.split("/")[0]


def ensemble_variant(drop_event: bool = False, drop_robust: bool = False, **consensus: int) -> EnsembleDetector:
    """The ensemble without `event`'s own test (its z set to 0: the consensus alone, with the hold-off), or
    without its consensus (robust, recalibrated: then it is `event`), or with consensus members it leaves
    out (seasonal=1, levelshift=1, flatline=1: measured, and left out)."""
    det = make_detector("ensemble")
    assert isinstance(det, EnsembleDetector)
    if drop_robust:
        det.calibrated = None
    elif consensus:
        det.calibrated = CalibratedDetector(window=det.window, **{"seasonal": 0, "levelshift": 0, "flatline": 0,
                                                                  **consensus})
    if drop_event:  # no statistics: `event`'s z is 0 everywhere
        block_stats = det._block_stats

        def no_stats(n0: int, ext: np.ndarray, n_points: int) -> tuple[np.ndarray, int]:
            stats, first = block_stats(n0, ext, n_points)
            return np.full_like(stats, np.nan), first

        det._block_stats = no_stats  # type: ignore[method-assign]
    return det


ABLATIONS: dict[str, dict[str, Any]] = {
    "ensemble without event's test": {"drop_event": True},
    "ensemble without robust (= event)": {"drop_robust": True},
    "ensemble with seasonal": {"seasonal": 1},
    "ensemble with levelshift": {"levelshift": 1},
    "ensemble with flatline": {"flatline": 1},
    "ensemble with all three (consensus = calibrated)": {"seasonal": 1, "levelshift": 1, "flatline": 1},
}


def scorers() -> dict[str, Callable[[RealSeries], np.ndarray]]:
    out: dict[str, Callable[[RealSeries], np.ndarray]] = {REF: lambda s: reference_zscore(s.values)}
    for name in [*DETECTORS, "flatline"]:
        out[name] = lambda s, name=name: make_detector(name).score_batch(s.ts, s.values)
    for label, kw in ABLATIONS.items():
        out[label] = lambda s, kw=kw: ensemble_variant(**kw).score_batch(s.ts, s.values)
    return out


def main(argv: list[str]) -> None:
    t0 = time.perf_counter()
    series = load_all()
    table = scorers()
    names = [REF] + [a for a in argv if a != REF] if argv else list(table)
    for name in names:  # "event:calibrated=1,holdoff=20": a detector with parameters
        if name not in table and ":" in name:
            det, _, args = name.partition(":")
            params = coerce_params(det, dict(kv.split("=", 1) for kv in args.split(",")))
            table[name] = lambda s, det=det, params=params: make_detector(det, **params).score_batch(s.ts, s.values)
    groups = {c: [s for s in series if s.corpus == c] for c in CORPORA}
    # the mscloud series shaped like most of NAB's: long (>= 4,000 points), few labelled events (<= 4)
    groups[LONG] = [s for s in series if s.corpus.startswith("mscloud") and len(s.values) >= 4000
                    and len(s.windows) <= 4]
    groups["all"] = series
    print(f"{len(series)} series, {sum(len(s.values) for s in series):,} points, "
          f"{sum(len(s.windows) for s in series)} windows; default detector: {DEFAULT_DETECTOR}\n")
    results: dict[str, dict[str, dict[str, float]]] = {}
    by_category: dict[str, dict[str, tuple[float, int]]] = {}
    for name in names:
        t1 = time.perf_counter()
        scores = [table[name](s) for s in series]
        secs = time.perf_counter() - t1
        results[name] = {}
        for corpus, members in groups.items():
            idx = [i for i, s in enumerate(series) if any(s is m for m in members)]
            sc = [scores[i] for i in idx]
            ev = [SeriesScorer(scores[i], series[i].windows) for i in idx]
            row: dict[str, float] = {}
            for p in PROFILES:
                thr, c = best(ev, sc, p)
                row[p.name] = float(c.normalised(p)[0])
                if p.name == "standard":
                    row.update(threshold=thr, tp=float(c.tp[0]), windows=c.windows, fp_points=float(c.fp_points[0]))
            results[name][corpus] = row
            if corpus in CORPORA:  # per category, at the corpus' standard threshold (one threshold per corpus)
                for cat in sorted({category(series[i]) for i in idx}):
                    cev = [SeriesScorer(scores[i], series[i].windows) for i in idx if category(series[i]) == cat]
                    cc = corpus_counts(cev, np.array([row["threshold"]]))
                    by_category.setdefault(f"{corpus}: {cat}", {})[name] = (
                        float(cc.normalised(PROFILES[0])[0]), cc.windows)
        print(f"  {name}: {secs:.1f} s", file=sys.stderr)
    for corpus in [*CORPORA, LONG, "all"]:
        members = groups[corpus]
        print(f"### {corpus}: {len(members)} series, {sum(len(s.values) for s in members):,} points, "
              f"{sum(len(s.windows) for s in members)} windows\n")
        print("| detector | standard | low FP | low FN | threshold (standard) | windows detected (after probation) "
              "| FP points |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for name in names:
            r = results[name][corpus]
            print(f"| {name} | {r['standard']:.1f} | {r['low FP']:.1f} | {r['low FN']:.1f} | {r['threshold']:.6g} "
                  f"| {int(r['tp'])}/{int(r['windows'])} | {int(r['fp_points'])} |")
        print()
    print("### standard score by category, at each detector's corpus threshold\n")
    print("| category (windows after probation) | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for cat, row in by_category.items():
        windows = next(iter(row.values()))[1]
        print(f"| {cat} ({windows}) | " + " | ".join(f"{row[n][0]:.1f}" for n in names) + " |")
    print()
    out = Path(__file__).parents[1] / "results" / "anomaly_real.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"corpora": results, "by_category": by_category}, indent=1))
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main(sys.argv[1:])

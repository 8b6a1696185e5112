"""The labelled evaluation corpus: synthetic series with injected anomalies, plus this machine's metrics.

Synthetic: five base shapes sampled every 5 minutes for 21 days (flat CPU, spiky latency with natural
heavy-tailed noise, daily+weekly seasonal request rate, a monotone counter, an AR(1) sensor), times six
anomaly kinds (spike, level shift, drift, seasonal break or variance change, flat line, variance
change), two seeds each, two anomalies per series. Real: `data/machine_raw.csv` (psutil, recorded by
`record_machine.py`) with labelled anomalies injected deterministically; the labelled result is written
to `data/machine_labelled.csv` so it can be inspected or fed to `watchkeeper detect`.

Label windows follow NAB: each anomaly gets a window of max(duration, 10% of the series / number of
anomalies) points starting at its onset. No anomaly starts in the first 25% of a series (learning).
"""

from __future__ import annotations

import csv
import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DATA = Path(__file__).parent / "data"
FIVE_MIN = 300.0
N_POINTS = 21 * 288
SHAPES = ("flat_cpu", "spiky_latency", "seasonal_requests", "counter", "ar1_sensor")
KINDS = ("spike", "level_shift", "drift", "seasonal_break", "flatline", "variance")


@dataclass
class Series:
    name: str
    source: str  # "synthetic" or "machine"
    ts: np.ndarray
    values: np.ndarray
    windows: list[tuple[int, int]]  # [start, end) point indices
    kinds: list[str] = field(default_factory=list)


def base_shape(shape: str, ts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = len(ts)
    day = 2 * np.pi * ts / 86400
    if shape == "flat_cpu":
        return np.clip(np.round(18 + rng.normal(0, 1.5, n), 1), 0, 100)
    if shape == "spiky_latency":
        lat = np.exp(rng.normal(np.log(40), 0.25, n))
        natural = rng.random(n) < 0.01  # routine slow requests: part of normal life, not labelled
        return np.round(lat + natural * rng.pareto(2.5, n) * 60, 2)
    if shape == "seasonal_requests":
        weekday = ((ts // 86400 + 3) % 7) < 5
        level = 1000 * (1 + 0.6 * np.sin(day - 2) + 0.2 * np.sin(2 * day)) * np.where(weekday, 1.0, 0.7)
        return np.round(level + rng.normal(0, 25, n))
    if shape == "counter":
        rate = 50 * (1 + 0.3 * np.sin(day))
        return np.cumsum(rng.poisson(rate)).astype(np.float64)
    if shape == "ar1_sensor":
        e = rng.normal(0, 0.2, n)
        y = np.zeros(n)
        for i in range(1, n):
            y[i] = 0.97 * y[i - 1] + e[i]
        return np.round(21 + y + 0.5 * np.sin(day), 3)
    raise ValueError(shape)


def inject(x: np.ndarray, kind: str, at: int, rng: np.random.Generator, seasonal: bool, period: int,
           rate: bool = False) -> int:
    """Inject one anomaly in place; returns its duration in points. ``rate``: x is a counter's increments."""
    diffs = np.diff(x[: at])
    sd = 1.4826 * float(np.median(np.abs(diffs - np.median(diffs)))) / np.sqrt(2) + 1e-9
    sd = max(sd, 1.4826 * float(np.median(np.abs(x[:at] - np.median(x[:at])))) * 0.2)
    sign = rng.choice([-1.0, 1.0])
    n = len(x)
    if kind == "spike":
        x[at] += sign * rng.uniform(6, 12) * sd
        return 1
    if kind == "level_shift":
        x[at:] += sign * rng.uniform(3, 6) * sd
        return n - at
    if kind == "drift":
        d = min(period // 2, n - at)
        x[at : at + d] += sign * np.linspace(0, rng.uniform(6, 10) * sd, d)
        x[at + d :] += sign * rng.uniform(6, 10) * sd * (d > 0)
        return d
    if kind == "seasonal_break" and seasonal:
        d = min(period // 2, n - at)  # half a day on its daily mean: the peak (or the trough) is missing
        x[at : at + d] = np.mean(x[at - period : at]) + rng.normal(0, sd, d)
        return d
    if kind in ("variance", "seasonal_break"):
        d = min(200, n - at)
        mean = np.median(x[at - 50 : at])
        x[at : at + d] = mean + (x[at : at + d] - mean) * 4
        return d
    if kind == "flatline":
        d = min(100, n - at)
        x[at : at + d] = 0.0 if rate else x[at - 1]  # a stopped counter, or a stuck gauge
        return d
    raise ValueError(kind)


def _place(n: int, k: int, rng: np.random.Generator, min_gap: int) -> list[int]:
    while True:
        spots = sorted(rng.integers(int(0.25 * n), int(0.92 * n), k).tolist())
        if all(b - a >= min_gap for a, b in itertools.pairwise(spots)):
            return spots


def windows_for(n: int, onsets: list[int], durations: list[int]) -> list[tuple[int, int]]:
    base = max(1, int(0.1 * n / len(onsets)))
    out = []
    for a, d in zip(onsets, durations, strict=True):
        out.append((a, min(n, a + max(base, min(d, 2 * base)))))
    return out


def synthetic(seeds: tuple[int, ...] = (1, 2)) -> list[Series]:
    out = []
    for shape_i, shape in enumerate(SHAPES):
        for kind_i, kind in enumerate(KINDS):
            for seed in seeds:
                rng = np.random.default_rng(1000 * seed + 10 * shape_i + kind_i)
                ts = 1_700_006_400.0 + FIVE_MIN * np.arange(N_POINTS)
                if shape == "counter":
                    rate = np.diff(base_shape(shape, ts, rng), prepend=0.0)
                    onsets = _place(N_POINTS, 2, rng, 600)
                    durs = [inject(rate, kind, a, rng, True, 288, rate=True) for a in onsets]
                    x = np.cumsum(np.maximum(rate, 0.0))
                else:
                    x = base_shape(shape, ts, rng)
                    onsets = _place(N_POINTS, 2, rng, 600)
                    durs = [inject(x, kind, a, rng, shape == "seasonal_requests", 288) for a in onsets]
                out.append(Series(f"{shape}/{kind}/{seed}", "synthetic", ts, x, windows_for(N_POINTS, onsets, durs),
                                  [kind, kind]))
    return out


MACHINE_PLAN = {  # metric -> anomaly kinds injected
    "cpu_percent": ("spike", "level_shift"),
    "mem_used_mb": ("flatline", "spike"),
    "ctx_switches": ("flatline", "level_shift"),
    "disk_write_kb": ("level_shift", "spike"),
}


def machine() -> list[Series]:
    raw = DATA / "machine_raw.csv"
    if not raw.exists():
        return []
    cols: dict[str, tuple[list[float], list[float]]] = {}
    with raw.open() as f:
        for row in csv.DictReader(f):
            t, v = cols.setdefault(row["metric"], ([], []))
            t.append(float(row["timestamp"]))
            v.append(float(row["value"]))
    out = []
    rows = []
    for i, (metric, kinds) in enumerate(MACHINE_PLAN.items()):
        if metric not in cols:
            continue
        ts, x = np.array(cols[metric][0]), np.array(cols[metric][1])
        rng = np.random.default_rng(77 + i)
        n = len(x)
        onsets = _place(n, len(kinds), rng, n // 5)
        cumulative = metric in ("ctx_switches", "disk_write_kb")
        work = np.diff(x, prepend=x[0]) if cumulative else x
        durs = [inject(work, k, a, rng, False, 288, rate=cumulative) for k, a in zip(kinds, onsets, strict=True)]
        x = x[0] + np.cumsum(np.maximum(work, 0.0)) if cumulative else work
        wins = windows_for(n, onsets, durs)
        out.append(Series(f"machine/{metric}", "machine", ts, x, wins, list(kinds)))
        label = np.zeros(n, dtype=int)
        for a, b in wins:
            label[a:b] = 1
        rows += [(t, metric, v, lab) for t, v, lab in zip(ts, x, label, strict=True)]
    with (DATA / "machine_labelled.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "metric", "value", "label"])
        w.writerows(rows)
    return out


def corpus() -> list[Series]:
    return synthetic() + machine()

"""Evaluator cost per expression over 20,000 series, against a hand-vectorised numpy baseline.

Run: PYTHONPATH=. python bench/promql/bench_evaluator.py
The baseline computes the same `sum by (job) (increase(...))` directly on a 2-D array (no selection,
no labels, no extrapolation edge cases): the floor any evaluator could reach in numpy.
"""

from __future__ import annotations

import time

import numpy as np

from watchkeeper.core.promql.evaluator import evaluate, parse
from watchkeeper.core.promql.series_store import SeriesStore

N_SERIES = 20_000
N_JOBS = 20
STEP = 15.0
N_POINTS = 40  # 10 minutes at 15 s


def build() -> tuple[SeriesStore, np.ndarray]:
    rng = np.random.default_rng(1)
    store = SeriesStore(retention=1800.0)
    ts = np.arange(N_POINTS) * STEP
    values = np.cumsum(rng.integers(0, 10, size=(N_SERIES, N_POINTS)), axis=1).astype(np.float64)
    for i in range(N_SERIES):
        labels = {"job": f"job{i % N_JOBS}", "instance": f"host{i // N_JOBS}:9100"}
        store.append("http_requests_total", labels, ts, values[i])
        store.append("cpu_usage", labels, ts, values[i] % 100)
    return store, values


def timed(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    start = time.perf_counter()
    store, values = build()
    print(f"load {2 * N_SERIES} series x {N_POINTS} points: {time.perf_counter() - start:.2f} s")
    at = (N_POINTS - 1) * STEP
    window = int(300 / STEP) + 1
    jobs = np.arange(N_SERIES) % N_JOBS

    def baseline() -> np.ndarray:
        v = values[:, -window:]
        d = np.diff(v, axis=1)
        inc = v[:, -1] - v[:, 0] + np.where(d < 0, v[:, :-1], 0).sum(axis=1)
        return np.bincount(jobs, weights=inc, minlength=N_JOBS)

    base = timed(baseline)
    print(f"numpy baseline sum by (job) (increase[5m]) over {N_SERIES} series: {base * 1e3:.2f} ms")
    for text in [
        "sum by (job) (rate(http_requests_total[5m]))",
        'rate(http_requests_total{job="job3"}[5m])',
        "avg_over_time(cpu_usage[5m])",
        "cpu_usage > 90",
        "http_requests_total / cpu_usage",
        'max by (job) (cpu_usage{instance=~"host1.*"})',
    ]:
        expr = parse(text)
        cost = timed(lambda expr=expr: evaluate(expr, at, store), repeat=2)
        print(f"{text:60s} {cost * 1e3:9.1f} ms  ({cost / base:7.0f}x baseline)")


if __name__ == "__main__":
    main()

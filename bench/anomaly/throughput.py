"""Throughput of every detector, in points scored per second by one process, vs. the zscore baseline.

    PYTHONPATH=. python bench/anomaly/throughput.py                  # every detector, wall-clock time
    PYTHONPATH=. python bench/anomaly/throughput.py --cpu event ensemble   # these, CPU time of the process

Three ways of feeding the same 200,000-point series (5-minute daily-seasonal with noise and spikes):
one call, batches of 4096 (what `watchkeeper detect` does on a file), batches of 64 (a stream
trickling in), and one point per call (an agent scoring one window aggregate of one series; first 10,000
points only, past the warm-up). Plus `watchkeeper detect` end to end (CSV parse + score + write) on the same series.
Each figure is the best of 3 runs (the machine is shared). Targets, for the default detector (`ensemble`)
and its member `event`: >= 200,000 points/s per process in batches, >= 30,000 points/s one point per call.
``--cpu`` times with the process' CPU time instead of the wall clock: on a shared, overloaded machine
(load average above the core count) the wall clock measures the queue for a core, not the detector.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from watchkeeper.core.detectors import DEFAULT_DETECTOR, make_detector

N = 200_000
ORDER = ["zscore", "event", "robust", "seasonal", "levelshift", "flatline", "calibrated", "ensemble"]
ROOT = Path(__file__).resolve().parents[2]


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    ts = 1_700_000_000.0 + 300.0 * np.arange(N)
    x = 100 + 30 * np.sin(2 * np.pi * ts / 86400) + rng.normal(0, 3, N)
    x[rng.integers(0, N, 200)] += 40
    return ts, x


CLOCK = time.perf_counter


def rate(name: str, ts: np.ndarray, x: np.ndarray, batch: int, repeat: int = 3) -> float:
    """Best of ``repeat`` runs: the machine is shared, the best run is the least disturbed one."""
    best = float("inf")
    for _ in range(repeat):
        det = make_detector(name)
        t0 = CLOCK()
        for i in range(0, len(x), batch):
            det.score_batch(ts[i : i + batch], x[i : i + batch])
        best = min(best, CLOCK() - t0)
    return len(x) / best


def cli_rate(name: str, csv_path: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    def child_cpu() -> float:
        t = os.times()
        return t.children_user + t.children_system

    with open(csv_path) as f:
        t0, c0 = time.perf_counter(), child_cpu()
        subprocess.run([sys.executable, "-m", "watchkeeper", "detect", "--detector", name], stdin=f,
                       stdout=subprocess.DEVNULL, check=True, env=env, cwd=ROOT)
    if CLOCK is time.process_time:
        return N / (child_cpu() - c0)
    return N / (time.perf_counter() - t0)


def main(argv: list[str]) -> None:
    global CLOCK
    if "--cpu" in argv:
        CLOCK = time.process_time
    order = [a for a in argv if not a.startswith("--")] or ORDER
    if "zscore" not in order:
        order = ["zscore", *order]
    ts, x = data()
    rows = {name: [rate(name, ts, x, b) for b in (N, 4096, 64)] + [rate(name, ts[:10000], x[:10000], 1)]
            for name in order}
    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
        f.write("timestamp,value\n")
        f.write("".join(f"{int(t)},{v:.3f}\n" for t, v in zip(ts, x, strict=True)))
    try:
        cli = {name: cli_rate(name, f.name) for name in dict.fromkeys(("zscore", "event", DEFAULT_DETECTOR))}
    finally:
        os.unlink(f.name)
    base = rows["zscore"][1]
    clock = "CPU time of the process" if CLOCK is time.process_time else "wall clock"
    print(f"{N} points, one process (numpy {np.__version__}), {clock}; load average {os.getloadavg()[0]:.1f}\n")
    print("| detector | points/s, one call | points/s, batches of 4096 | points/s, batches of 64 | "
          "points/s, one point per call | time vs zscore (batches of 4096) |")
    print("|---|---|---|---|---|---|")
    for name in order:
        a, b, c, d = rows[name]
        label = f"{name} (default)" if name == DEFAULT_DETECTOR else name
        print(f"| {label} | {a:,.0f} | {b:,.0f} | {c:,.0f} | {d:,.0f} | {base / b:.1f}x |")
    print("\n`watchkeeper detect` end to end (parse CSV, score, write): "
          + ", ".join(f"{name} {r:,.0f} rows/s" for name, r in cli.items()))
    for name in [n for n in dict.fromkeys(("event", DEFAULT_DETECTOR)) if n in rows]:
        batch, one = rows[name][1], rows[name][3]
        print(f"{name}: {batch:,.0f} points/s in batches of 4096 ({'meets' if batch >= 200_000 else 'MISSES'} "
              f"200,000), {one:,.0f} one point per call ({'meets' if one >= 30_000 else 'MISSES'} 30,000)")


if __name__ == "__main__":
    main(sys.argv[1:])

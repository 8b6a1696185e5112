"""Rule evaluation cost per tick: 100 rules (alerting and recording) over 20,000 series, pure engine.

Workload: 10 metric families x 2,000 series each (20 jobs x 100 instances), counters and gauges, one
point per series every 15 s, 10 minutes of history before measuring. Each tick (30 s of event time)
appends the next 30 s of points to the store (the baseline: the bare `SeriesStore.append` of the same
samples, measured in the same run) and then advances the engine over the tick. The ratio says what the
rules cost on top of merely holding the data.

Run: PYTHONPATH=. python bench/rules/engine_tick.py [--series 20000] [--rules 100] [--ticks 10]
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson

from bench.rules.workload import INTERVAL, T0, points, rule_file, series_labels
from watchkeeper.agents.rules_wiring import loaded_rules
from watchkeeper.core.promql.evaluator import DEFAULT_SEMANTICS, SEMANTICS
from watchkeeper.core.promql.series_store import SeriesStore


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--series", type=int, default=20_000)
    ap.add_argument("--rules", type=int, default=100)
    ap.add_argument("--ticks", type=int, default=10)
    ap.add_argument("--json", help="write the numbers here too")
    ap.add_argument("--semantics", choices=SEMANTICS, default=DEFAULT_SEMANTICS, help="PromQL semantics")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.rules.yml"
        path.write_text(rule_file(args.rules))
        from watchkeeper.core.rules.loader import load_rule_files

        groups = load_rule_files([str(path)], semantics=args.semantics)
    loaded = loaded_rules(groups, 1, 5.0, args.semantics)
    rng = np.random.default_rng(1)
    series = series_labels(args.series)
    store = SeriesStore(loaded.retention)
    history = 600.0
    for name, labels, ts, values in points(series, T0 - history, T0, rng):
        store.append(name, labels, ts, values)
    engines = [loaded.engine_factory(unit, None, T0 - INTERVAL) for unit in loaded.units]
    for eng in engines:
        eng.advance(store, T0 - INTERVAL)

    append_ms: list[float] = []
    tick_ms: list[float] = []
    alerts = recorded = 0
    for k in range(args.ticks):
        start, end = T0 + k * INTERVAL, T0 + (k + 1) * INTERVAL
        batch = points(series, start, end, rng)
        t0 = time.perf_counter()
        for name, labels, ts, values in batch:
            store.append(name, labels, ts, values)
        t1 = time.perf_counter()
        for eng in engines:
            step = eng.advance(store, start)
            alerts += len(step.alerts)
            recorded += len(step.recorded)
        t2 = time.perf_counter()
        append_ms.append((t1 - t0) * 1000)
        tick_ms.append((t2 - t1) * 1000)

    result = {
        "series": args.series, "rules": args.rules, "ticks": args.ticks,
        "tick_ms_median": statistics.median(tick_ms), "tick_ms_max": max(tick_ms),
        "append_ms_median": statistics.median(append_ms),
        "ratio_tick_to_append": statistics.median(tick_ms) / statistics.median(append_ms),
        "alerts": alerts, "recorded_samples": recorded,
    }
    for key, value in result.items():
        print(f"{key:>22}: {value:.2f}" if isinstance(value, float) and not math.isnan(value) else
              f"{key:>22}: {value}")
    if args.json:
        Path(args.json).write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()

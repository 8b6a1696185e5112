"""The rule benchmarks' shared workload: metric families, the 100-rule mix and the points of each series.

`engine_tick.py` (cost per tick) and `scaling.py` (single store vs partitioned evaluation) read the same
series and rules, so their numbers compare. Series: `FAMILIES` metric families, each with `n / FAMILIES`
series (20 jobs x n / 200 instances), half of the families' series counters and half gauges, one point
per series every `SCRAPE` seconds.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import orjson
import yaml

SCRAPE = 15.0
INTERVAL = 30.0
T0 = 1_700_000_010.0  # on a 30 s tick
FAMILIES = 10
JOBS = 20

Series = tuple[str, dict[str, str], bool]  # (metric name, labels, is a counter)


def rule_file(n_rules: int, interval: float = INTERVAL) -> str:
    """`n_rules` rules spread over the families: rates, ratios, aggregations, thresholds with `for`,
    one group per `FAMILIES` rules."""
    templates = [
        ("record", "job:{m}:rate5m", "sum by (job) (rate({m}_total[5m]))"),
        ("alert", "{M}High", "rate({m}_total[5m]) > 50"),
        ("record", "job:{m}:max", "max by (job) (max_over_time({m}_gauge[5m]))"),
        ("alert", "{M}Hot", "avg_over_time({m}_gauge[5m]) > 90"),
        ("alert", "{M}Jump", "increase({m}_total[2m]) > 10000"),
        ("record", "job:{m}:p90", "quantile by (job) (0.9, {m}_gauge)"),
        ("alert", "{M}Down", "absent({m}_gauge{{job=\"job-0\"}})"),
        ("alert", "{M}Spread", "stddev by (job) ({m}_gauge) > 40"),
        ("record", "job:{m}:count", "count by (job) ({m}_gauge > 50)"),
        ("alert", "{M}Deriv", "deriv({m}_gauge[5m]) > 1"),
    ]
    groups: list[dict[str, object]] = []
    for i in range(n_rules):
        fam = i % FAMILIES
        kind, name, expr = templates[(i // FAMILIES) % len(templates)]
        m = f"m{fam}"
        rule: dict[str, object] = {kind: name.format(m=m, M=m.upper()) + ("" if kind == "record" else f"_{i}"),
                                   "expr": expr.format(m=m)}
        if kind == "alert":
            rule["for"] = "1m"
        if i % FAMILIES == 0 or not groups:
            groups.append({"name": f"g{len(groups)}", "interval": f"{interval:g}s", "rules": []})
        groups[-1]["rules"].append(rule)  # type: ignore[attr-defined]
    return yaml.safe_dump({"groups": groups}, sort_keys=False)


def series_labels(n_series: int) -> list[Series]:
    per_family = n_series // FAMILIES
    out = []
    for fam in range(FAMILIES):
        for j in range(per_family):
            labels = {"job": f"job-{j % JOBS}", "instance": f"i-{j // JOBS}"}
            counter = j % 2 == 0
            out.append((f"m{fam}_total" if counter else f"m{fam}_gauge", labels, counter))
    return out


def points(series: list[Series], start: float, end: float,
           rng: np.random.Generator) -> list[tuple[str, dict[str, str], np.ndarray, np.ndarray]]:
    """Every series' points in [start, end): counters grow at 10-70 per second, gauges swing 5-95."""
    ts = np.arange(start, end, SCRAPE)
    out = []
    for k, (name, labels, counter) in enumerate(series):
        if counter:
            values = (ts - T0) * (1 + k % 7) * 10.0
        else:
            values = 50 + 45 * np.sin((ts - T0) / 600 + k) + rng.normal(0, 1, len(ts))
        out.append((name, labels, ts, values))
    return out


def scrape_messages(batch: list[tuple[str, dict[str, str], np.ndarray, np.ndarray]],
                    series: list[Series]) -> Iterator[tuple[float, list[tuple[bytes, bytes]]]]:
    """The points of `points(series, ...)` as the samples topic carries them: per scrape time, one
    `SampleBatch` per instance (its series of every job and family; key = source = the instance), encoded
    as `schemas.codec.encode` would (the JSON built directly: pydantic for 200,000 series is the slow part)."""
    by_instance: dict[str, list[int]] = {}
    for k, (_, labels, _) in enumerate(series):
        by_instance.setdefault(labels["instance"], []).append(k)
    times = batch[0][2] if batch else np.empty(0)
    for j, ts in enumerate(times.tolist()):
        msgs = []
        for inst, ks in by_instance.items():
            blocks = [{"name": batch[k][0], "labels": batch[k][1], "kind": "counter" if series[k][2] else "gauge",
                       "ts": [ts], "values": [float(batch[k][3][j])]} for k in ks]
            msgs.append((inst.encode(), orjson.dumps({"v": 1, "source": inst, "labels": {}, "series": blocks})))
        yield ts, msgs

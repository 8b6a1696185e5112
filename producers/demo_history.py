"""A synthetic week of a small web service, with one incident, for trying `watchkeeper rules backtest` on
a fresh machine (`watchkeeper demo load`).

Three API instances at 10 s resolution: request counters by status code, p95 latency and CPU, with a
daily cycle and noise. One incident two days before the end, 14:00-14:40 UTC: 12 % of requests fail,
p95 latency rises above a second and CPU reaches 95 %. A near miss a day earlier, 09:00-09:06 UTC: 3 %
errors, which a tuned (lower) threshold catches and the shipped one does not. Time comes in as `end`,
so the same call gives the same week.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

STEP = 10.0
INSTANCES = ("api-1", "api-2", "api-3")
JOB = "demo-api"


@dataclass(frozen=True)
class Incident:
    start: float
    end: float
    error_ratio: float
    latency: float
    cpu: float


def incidents(end: float) -> list[Incident]:
    day = 86400.0
    midnight = end // day * day
    return [Incident(midnight - 2 * day + 14 * 3600, midnight - 2 * day + 14 * 3600 + 2400, 0.12, 1.4, 95.0),
            Incident(midnight - 3 * day + 9 * 3600, midnight - 3 * day + 9 * 3600 + 360, 0.03, 0.3, 60.0)]


# (name, labels, kind, ts, values) per series, a day (or less) at a time
Chunk = list[tuple[str, dict[str, str], str, np.ndarray, np.ndarray]]


def demo_history(end: float, days: int = 7, seed: int = 7) -> Iterator[Chunk]:
    """The week before `end`, a day per chunk, every series ascending in time."""
    rng = np.random.default_rng(seed)
    start = (end - days * 86400.0) // STEP * STEP
    events = incidents(end)
    totals = {(i, code): 0.0 for i in INSTANCES for code in ("200", "500")}
    a = start
    while a < end:
        b = min(end, a + 86400.0)
        ts = np.arange(a, b, STEP)
        daily = 1 + 0.5 * np.sin(2 * np.pi * (ts % 86400.0) / 86400.0 - np.pi / 2)
        err = np.full(len(ts), 0.002)
        latency = np.full(len(ts), 0.15)
        cpu_floor = np.zeros(len(ts))
        for inc in events:
            on = (ts >= inc.start) & (ts < inc.end)
            err[on], latency[on], cpu_floor[on] = inc.error_ratio, inc.latency, inc.cpu
        chunk: Chunk = []
        for k, inst in enumerate(INSTANCES):
            labels = {"job": JOB, "instance": inst}
            per_step = rng.poisson(20 * STEP * daily).astype(np.float64)
            errors = rng.binomial(per_step.astype(np.int64), err).astype(np.float64)
            for code, count in (("200", per_step - errors), ("500", errors)):
                series = totals[(inst, code)] + np.cumsum(count)
                totals[(inst, code)] = float(series[-1])
                chunk.append(("demo_http_requests_total", {**labels, "code": code}, "counter", ts, series))
            lat = latency * (1 + 0.1 * rng.standard_normal(len(ts)))
            chunk.append(("demo_request_latency_p95_seconds", labels, "gauge", ts, np.abs(lat)))
            cpu = 30 + 25 * daily + k * 3 + rng.normal(0, 3, len(ts))
            chunk.append(("demo_cpu_usage_percent", labels, "gauge", ts, np.clip(np.maximum(cpu, cpu_floor), 0, 100)))
        yield chunk
        a = b

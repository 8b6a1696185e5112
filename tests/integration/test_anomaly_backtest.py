"""Anomaly rules in `watchkeeper rules backtest`: given samples with a level shift on one host, and their
one-minute window aggregates, the anomaly agent's step (`AnomalyStep`, fed the `wk.samples` and
`wk.aggregates` messages as the worker reads them, a few at a time) gives some alert transitions; the
same samples and aggregates stored in ClickHouse (chDB, through the sink's own row builders) and
backtested must give exactly those transitions, field for field (scores to rounding where the detector's
arithmetic depends on how points are batched), and `--compare` against them stored in the `alerts`
table must find no difference."""

from __future__ import annotations

import math

import clickhouse_connect
import numpy as np

from watchkeeper.agents.anomaly_step import AnomalyStep
from watchkeeper.agents.rules_wiring import loaded_rules
from watchkeeper.core.anomaly_rules import load_anomaly_text
from watchkeeper.reports.backtest_report import build_document, run_backtest, text_report
from watchkeeper.schemas import (
    AlertEvent,
    SampleBatch,
    SeriesBlock,
    WindowAggregate,
    decode,
    encode,
    format_series_id,
    series_id,
)
from watchkeeper.schemas.aggregates import SketchBins
from watchkeeper.sinks.clickhouse_rows import aggregates_table, alerts_table, samples_table
from watchkeeper.sinks.clickhouse_schema import create_tables

T0, STEP, N, SHIFT = 1_796_000_400.0, 10.0, 1800, 1300
WINDOW = 60.0
PER_MESSAGE = 30  # points per series per samples message

RULES = """anomaly:
  - name: hosts
    rules:
      - alert: CpuShift
        selector: 'cpu{job="node"}'
        input: samples
        threshold: 0.7  # the default detector scores z/(z+3): a 15-sigma shift scores ~0.83
        keep_firing_for: 2m  # it flags an event once, then holds off (docs/anomaly-detection.md, "Anomaly alerts")
        labels: {severity: high}
        annotations: {summary: "{{ $labels.host }} cpu is unusual (score {{ $value }})"}
      - alert: CpuWindowShift
        selector: 'cpu'
        input: aggregates
        field: p95
        detector: zscore
        threshold: 0.99
        keep_firing_for: 2m
"""


def cpu(host: str) -> np.ndarray:
    x = 50 + np.random.default_rng(1 if host == "a" else 2).normal(0, 2, N)
    if host == "a":
        x[SHIFT:] += 30
    return x


def messages() -> tuple[list[SampleBatch], list[WindowAggregate]]:
    ts = T0 + STEP * np.arange(N)
    values = {h: cpu(h) for h in ("a", "b")}
    batches = [SampleBatch(source="node", labels={"job": "node"}, series=[
        SeriesBlock(name="cpu", labels={"host": h}, kind="gauge", ts=ts[i:i + PER_MESSAGE].tolist(),
                    values=values[h][i:i + PER_MESSAGE].tolist()) for h in ("a", "b")])
        for i in range(0, N, PER_MESSAGE)]
    per = int(WINDOW / STEP)
    aggs = []
    for w in range(N // per):
        for h in ("a", "b"):
            labels = {"host": h, "job": "node"}
            x = values[h][w * per:(w + 1) * per]
            aggs.append(WindowAggregate(
                series_id=format_series_id(series_id("cpu", labels)), name="cpu", labels=labels,
                start=T0 + w * WINDOW, end=T0 + (w + 1) * WINDOW, count=len(x), sum=float(x.sum()),
                min=float(x.min()), max=float(x.max()), last=float(x[-1]), p50=float(np.quantile(x, 0.5)),
                p90=float(np.quantile(x, 0.9)), p95=float(np.quantile(x, 0.95)), p99=float(np.quantile(x, 0.99)),
                sketch=SketchBins()))
    return batches, aggs


def live_events(batches: list[SampleBatch], aggs: list[WindowAggregate]) -> list[AlertEvent]:
    """What the anomaly agent sends: one step per input topic (as the agent runs them), fed the topic's
    messages in batches of 7."""
    rules = [r for g in load_anomaly_text(RULES) for r in g.rules]
    out: list[AlertEvent] = []
    for kind, feed in (("samples", [(b"node", encode(b)) for b in batches]),
                       ("aggregates", [(None, encode(a)) for a in aggs])):
        step = AnomalyStep(rules, kind)
        recs = [(offset, key, raw, 0.0) for offset, (key, raw) in enumerate(feed)]
        for a in range(0, len(recs), 7):
            out += [decode(raw, AlertEvent) for _, raw in step.process_records(0, recs[a:a + 7], 0.0).records]
    return out


def canonical(events: list[AlertEvent]) -> list[tuple[object, ...]]:
    return sorted((e.fingerprint, e.rule, e.state, e.event_time, e.starts_at, e.ends_at, e.value,  # value: [6]
                   tuple(sorted(e.labels.items())), tuple(sorted(e.annotations.items())), e.source)
                  for e in events)


def test_backtest_of_anomaly_rules_gives_the_live_agents_transitions(ch_dsn: str) -> None:
    batches, aggs = messages()
    live = live_events(batches, aggs)
    seen = {(e.rule, e.labels["host"], e.state) for e in live}
    # The shift on host a alerts on both inputs (neither rule has a `for`: no pending)
    assert {("CpuShift", "a", "firing"), ("CpuShift", "a", "resolved"),
            ("CpuWindowShift", "a", "firing"), ("CpuWindowShift", "a", "resolved")} <= seen

    client = clickhouse_connect.get_client(dsn=ch_dsn)
    create_tables(client, samples_ttl_days=3650)
    client.insert_arrow("samples", samples_table(batches))
    client.insert_arrow("aggregates", aggregates_table([a.model_dump() for a in aggs]))
    rules = [r for g in load_anomaly_text(RULES) for r in g.rules]
    end = T0 + N * STEP
    result = run_backtest(client, loaded_rules([], 1, 5.0), T0, end, 5.0, warmup=0.0, anomaly=rules)
    assert not result.errors
    got, want = canonical(result.events), canonical(live)
    assert [g[:6] + g[7:] for g in got] == [w[:6] + w[7:] for w in want]
    # Scores (the alert's value) agree to rounding only: zscore's running sums restart at each scoring call,
    # and the agent scored a window or a few at a time where the replay scores a slice at once.
    assert all(math.isclose(g[6], w[6], rel_tol=1e-9) for g, w in zip(got, want, strict=True))  # type: ignore[arg-type]
    assert [g[6] for g in got if g[1] == "CpuShift"] == [w[6] for w in want if w[1] == "CpuShift"]
    fired = {r: sum(1 for e in live if e.rule == r and e.state == "firing") for r in ("CpuShift", "CpuWindowShift")}
    assert {s.rule: s.fired for s in result.summaries} == fired

    client.insert_arrow("alerts", alerts_table([e.model_dump() for e in live]))
    compared = run_backtest(client, loaded_rules([], 1, 5.0), T0, end, 5.0, warmup=0.0, anomaly=rules,
                            with_compare=True)
    assert compared.comparison is not None and compared.comparison.identical
    assert "1 anomaly rules" not in text_report(build_document(compared, ["anomaly.yml"], charts=False))
    assert "2 anomaly rules" in text_report(build_document(compared, ["anomaly.yml"], charts=False))

"""Regenerate tests/rules/promql: rule files, test files, and expectations computed by promtool itself.

Each corpus entry below names input series, recording rules and queries. The script writes the rule
file and a test file with empty expectations, runs `promtool test rules`, reads the values promtool
reports ("got: ..."), writes them in as `exp_samples`, and checks that promtool then passes. promtool
(Prometheus 2.42) is the reference, so the expectations are right by construction; hand-check new
ones anyway (the test docstrings say what each file covers). Queries must not produce NaN (promtool
2.42 compares exactly, and NaN never equals NaN) nor topk/bottomk ties (promtool loads series in
random order).

Run: python tests/rules/promql/generate_corpus.py [NAME...]   (all specs, or only the named ones)
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

OUT = Path(__file__).resolve().parent

SPECS: dict[str, dict[str, Any]] = {
    "selector_matchers": dict(
        doc="Vector selectors with =, !=, =~ and !~ matchers, and matchers on __name__.",
        series=[
            ('http_requests{job="api", code="200", path="/a"}', "1 2 3 4 5"),
            ('http_requests{job="api", code="500", path="/b"}', "10 20 30 40 50"),
            ('http_requests{job="web", code="404", path="/a"}', "7 7 7 7 7"),
            ('http_errors{job="api"}', "3 3 3 3 3"),
        ],
        rules=[
            ("job:http_requests:api", 'http_requests{job="api"}'),
            ("code:http_requests:not200", 'http_requests{code!="200"}'),
        ],
        queries=[
            ('http_requests{job="api"}', "4m"),
            ('http_requests{code=~"5.."}', "4m"),
            ('http_requests{code!~"2.*|4.*"}', "4m"),
            ('http_requests{path="/a", job!="web"}', "2m"),
            ('{__name__=~"http_.*", job="api"}', "3m"),
            ('http_requests{code=~"20"}', "3m"),
            ('http_requests{nolabel=""}', "1m"),
            ("job:http_requests:api", "4m"),
            ("code:http_requests:not200", "3m"),
        ],
    ),
    "offset": dict(
        doc="The offset modifier on instant and range selectors.",
        series=[('temp{room="a"}', "0+1x20"), ('requests_total{job="a"}', "0+60x20")],
        rules=[
            ("temp:offset5m", "temp offset 5m"),
            ("job:requests:rate5m_offset5m", "rate(requests_total[5m] offset 5m)"),
        ],
        queries=[
            ("temp offset 5m", "10m"),
            ("temp offset 3m", "2m"),
            ("temp - temp offset 10m", "15m"),
            ("rate(requests_total[5m] offset 10m)", "15m"),
            ("temp:offset5m", "12m"),
            ("job:requests:rate5m_offset5m", "20m"),
            ("increase(requests_total[2m] offset 1m)", "10m"),
        ],
    ),
    "lookback_series_end": dict(
        doc="A series that stops reporting stays visible for the 5-minute lookback (inclusive) and then disappears.",
        series=[('up{instance="a"}', "1 1 1"), ('up{instance="b"}', "1x15")],
        rules=[("up:count", "count(up)"), ("up:sum", "sum(up)")],
        queries=[
            ("up", "2m"),
            ("up", "6m"),
            ("up", "7m"),
            ("up", "8m"),
            ("up:count", "5m"),
            ("up:count", "8m"),
            ("up:sum", "10m"),
            ("count(up)", "7m30s"),
        ],
    ),
    "lookback_gaps": dict(
        doc="Gaps (_) in a series: the last sample is used within the lookback, and the series vanishes after it.",
        series=[('queue_depth{q="x"}', "5 _x6 9 _ _ 12"), ('queue_depth{q="y"}', "1 2 _x8 3")],
        interval="1m",
        rules=[("q:depth", "sum by (q) (queue_depth)")],
        queries=[
            ("queue_depth", "3m"),
            ("queue_depth", "5m"),
            ("queue_depth", "6m"),
            ("queue_depth", "9m"),
            ("queue_depth", "10m"),
            ("q:depth", "6m"),
            ("q:depth", "11m"),
            ("count_over_time(queue_depth[10m])", "11m"),
        ],
    ),
    "staleness_markers": dict(
        doc="Explicit staleness markers end a series at once; range functions skip them; a later sample revives it.",
        series=[('proc_up{pid="1"}', "1 1 stale _ 1 1"), ('proc_cpu{pid="1"}', "0+10x3 stale 50 60 70")],
        rules=[("proc:up", "proc_up"), ("proc:cpu:count", "count_over_time(proc_cpu[5m])")],
        queries=[
            ("proc_up", "1m"),
            ("proc_up", "2m"),
            ("proc_up", "3m"),
            ("proc_up", "4m"),
            ("proc:up", "3m"),
            ("proc:up", "5m"),
            ("count_over_time(proc_cpu[5m])", "6m"),
            ("proc:cpu:count", "6m"),
            ("proc_cpu", "4m"),
            ("last_over_time(proc_cpu[5m])", "4m"),
        ],
    ),
    "rate_basic": dict(
        doc="rate() of steadily increasing counters, including extrapolation to the range boundaries.",
        series=[
            ('http_requests_total{job="a"}', "0+60x30"),
            ('http_requests_total{job="b"}', "100+30x30"),
            ('bytes_total{job="a"}', "0+1024x30"),
        ],
        rules=[
            ("job:http_requests:rate5m", "rate(http_requests_total[5m])"),
            ("job:bytes:rate1m", "rate(bytes_total[1m])"),
        ],
        queries=[
            ("rate(http_requests_total[5m])", "10m"),
            ("rate(http_requests_total[2m])", "10m"),
            ("rate(http_requests_total[10m])", "5m"),
            ("rate(http_requests_total[90s])", "20m"),
            ("job:http_requests:rate5m", "15m"),
            ("job:bytes:rate1m", "20m"),
            ("rate(http_requests_total[1m])", "0s"),
        ],
    ),
    "rate_counter_reset": dict(
        doc="Counter resets: rate and increase add the value before each drop.",
        series=[
            ('errors_total{svc="x"}', "0 10 20 30 5 15 25 3 13"),
            ('errors_total{svc="y"}', "100 110 0 10 20 30 40 50 60"),
        ],
        rules=[
            ("svc:errors:rate5m", "rate(errors_total[5m])"),
            ("svc:errors:increase8m", "increase(errors_total[8m])"),
        ],
        queries=[
            ("rate(errors_total[5m])", "5m"),
            ("rate(errors_total[8m])", "8m"),
            ("increase(errors_total[3m])", "5m"),
            ("svc:errors:rate5m", "8m"),
            ("svc:errors:increase8m", "8m"),
        ],
    ),
    "rate_extrapolation": dict(
        doc="rate extrapolation: series starting inside the range (zero point), sparse samples, scrape jitter.",
        series=[
            ('new_counter_total{i="late"}', "_x6 5+10x10"),
            ('new_counter_total{i="big"}', "_x6 1000+10x10"),
            ('sparse_total{i="s"}', "0 _ _ 30 _ _ 60 _ _ 90 _ _ 120"),
            ('neg_start_total{i="n"}', "-5+10x10"),
        ],
        interval="1m",
        rules=[("i:new:rate5m", "rate(new_counter_total[5m])")],
        queries=[
            ("rate(new_counter_total[5m])", "8m"),
            ("increase(new_counter_total[5m])", "8m"),
            ("increase(new_counter_total[10m])", "10m"),
            ("rate(sparse_total[5m])", "9m"),
            ("increase(sparse_total[10m])", "12m"),
            ("increase(neg_start_total[5m])", "6m"),
            ("i:new:rate5m", "9m"),
        ],
    ),
    "increase": dict(
        doc="increase(): rate times the range, extrapolated; reset-aware.",
        series=[('jobs_done_total{q="a"}', "0+2x20"), ('jobs_done_total{q="b"}', "0 5 10 2 7 12 17 22 27 32 37")],
        rules=[
            ("q:jobs_done:increase5m", "increase(jobs_done_total[5m])"),
            ("jobs_done:increase10m:sum", "sum(increase(jobs_done_total[10m]))"),
        ],
        queries=[
            ("increase(jobs_done_total[5m])", "10m"),
            ("increase(jobs_done_total[2m])", "4m"),
            ("q:jobs_done:increase5m", "6m"),
            ("jobs_done:increase10m:sum", "10m"),
            ("increase(jobs_done_total[1h])", "10m"),
        ],
    ),
    "delta": dict(
        doc="delta() on gauges: no reset handling, negative changes kept, extrapolated like rate.",
        series=[
            ('disk_free_bytes{dev="sda"}', "1000-10x20"),
            ('disk_free_bytes{dev="sdb"}', "50 60 40 80 20 90 10"),
            ('temp_celsius{room="x"}', "20 21 22 21 20 19 18 17 16 15 14"),
        ],
        rules=[("dev:disk_free:delta5m", "delta(disk_free_bytes[5m])")],
        queries=[
            ("delta(disk_free_bytes[5m])", "6m"),
            ("delta(temp_celsius[10m])", "10m"),
            ("delta(temp_celsius[3m])", "4m"),
            ("dev:disk_free:delta5m", "10m"),
            ("delta(disk_free_bytes[90s])", "3m"),
        ],
    ),
    "irate": dict(
        doc="irate() uses the last two samples; a reset uses the last value alone.",
        series=[
            ('pkts_total{if="eth0"}', "0 10 30 60 100 150"),
            ('pkts_total{if="eth1"}', "0 100 200 50 80 90"),
            ('pkts_total{if="eth2"}', "0 _ _ 30 _ 90"),
        ],
        rules=[("if:pkts:irate5m", "irate(pkts_total[5m])")],
        queries=[
            ("irate(pkts_total[5m])", "5m"),
            ("irate(pkts_total[5m])", "3m"),
            ("if:pkts:irate5m", "4m"),
            ("irate(pkts_total[1m])", "5m"),
        ],
    ),
    "deriv": dict(
        doc="deriv(): least-squares slope per second of a gauge.",
        series=[
            ('mem_used_bytes{host="a"}', "100+6x20"),
            ('mem_used_bytes{host="b"}', "500 480 490 450 470 430 420"),
            ('mem_used_bytes{host="c"}', "7x10"),
        ],
        rules=[("host:mem_used:deriv5m", "deriv(mem_used_bytes[5m])")],
        queries=[
            ("deriv(mem_used_bytes[5m])", "6m"),
            ("deriv(mem_used_bytes[10m])", "10m"),
            ("host:mem_used:deriv5m", "6m"),
        ],
    ),
    "predict_linear": dict(
        doc="predict_linear(): least-squares extrapolation from the evaluation time.",
        series=[
            ('disk_used_bytes{dev="a"}', "0+100x30"),
            ('disk_used_bytes{dev="b"}', "1000 1010 1030 1020 1060 1080 1070 1100"),
        ],
        rules=[("dev:disk_used:predict1h", "predict_linear(disk_used_bytes[10m], 3600)")],
        queries=[
            ("predict_linear(disk_used_bytes[5m], 600)", "7m"),
            ("predict_linear(disk_used_bytes[10m], 3600)", "10m"),
            ("dev:disk_used:predict1h", "12m"),
            ("predict_linear(disk_used_bytes[5m], 0)", "7m"),
            ('predict_linear(disk_used_bytes{dev="a"}[5m] offset 5m, 300)', "20m"),
        ],
    ),
    "avg_over_time": dict(
        doc="avg_over_time(): mean of the points in the (closed) range.",
        series=[
            ('latency_seconds{svc="a"}', "1 2 3 4 5 6 7 8 9 10"),
            ('latency_seconds{svc="b"}', "0.1 0.3 0.2 0.5 _ _ 0.4"),
        ],
        rules=[("svc:latency:avg5m", "avg_over_time(latency_seconds[5m])")],
        queries=[
            ("avg_over_time(latency_seconds[5m])", "6m"),
            ("avg_over_time(latency_seconds[2m])", "9m"),
            ("svc:latency:avg5m", "5m"),
            ("avg_over_time(latency_seconds[30s])", "3m"),
        ],
    ),
    "min_max_over_time": dict(
        doc="min_over_time() and max_over_time().",
        series=[('cpu_temp{core="0"}', "40 45 42 60 38 50 55"), ('cpu_temp{core="1"}', "-5 3 -10 7 0 2 1")],
        rules=[
            ("core:cpu_temp:max5m", "max_over_time(cpu_temp[5m])"),
            ("core:cpu_temp:min5m", "min_over_time(cpu_temp[5m])"),
        ],
        queries=[
            ("max_over_time(cpu_temp[3m])", "6m"),
            ("min_over_time(cpu_temp[3m])", "6m"),
            ("core:cpu_temp:max5m", "5m"),
            ("core:cpu_temp:min5m", "6m"),
            ("max_over_time(cpu_temp[10m])", "6m"),
        ],
    ),
    "sum_count_over_time": dict(
        doc="sum_over_time() and count_over_time(); both ends of the range are included.",
        series=[('events{k="a"}', "1 2 3 4 5 6 7 8"), ('events{k="b"}', "10 _ 10 _ 10 _ 10 _")],
        rules=[("k:events:sum5m", "sum_over_time(events[5m])"), ("k:events:count5m", "count_over_time(events[5m])")],
        queries=[
            ("sum_over_time(events[5m])", "7m"),
            ("count_over_time(events[5m])", "7m"),
            ("count_over_time(events[1m])", "4m"),
            ("k:events:sum5m", "6m"),
            ("k:events:count5m", "6m"),
            ("sum_over_time(events[59s])", "3m"),
        ],
    ),
    "last_over_time": dict(
        doc="last_over_time() keeps the metric name and sees a series for the whole range after it stops.",
        series=[('heartbeat{node="n1"}', "1 2 3"), ('heartbeat{node="n2"}', "5 6 7 8 9 10 11 12 13 14 15 16")],
        rules=[("node:heartbeat:last10m", "last_over_time(heartbeat[10m])")],
        queries=[
            ("last_over_time(heartbeat[10m])", "9m"),
            ("last_over_time(heartbeat[10m])", "13m"),
            ("last_over_time(heartbeat[1m])", "4m"),
            ("node:heartbeat:last10m", "11m"),
        ],
    ),
    "quantile_over_time": dict(
        doc="quantile_over_time(): linear interpolation between closest ranks; q outside [0,1] gives ±Inf.",
        series=[('resp_ms{ep="a"}', "10 20 30 40 50 60 70 80 90 100"), ('resp_ms{ep="b"}', "5 1 4 2 3")],
        rules=[("ep:resp_ms:p90_5m", "quantile_over_time(0.9, resp_ms[5m])")],
        queries=[
            ("quantile_over_time(0.5, resp_ms[5m])", "9m"),
            ("quantile_over_time(0.9, resp_ms[5m])", "4m"),
            ("quantile_over_time(0, resp_ms[10m])", "9m"),
            ("quantile_over_time(1, resp_ms[10m])", "9m"),
            ("quantile_over_time(1.5, resp_ms[10m])", "9m"),
            ("quantile_over_time(-1, resp_ms[10m])", "9m"),
            ("ep:resp_ms:p90_5m", "9m"),
            ("quantile_over_time(0.25, resp_ms[3m])", "4m"),
        ],
    ),
    "absent": dict(
        doc="absent(): 1 with the selector's equality labels when nothing matches, empty otherwise.",
        series=[('up{job="api", instance="i1"}', "1 1 1 1"), ('up{job="db", instance="i2"}', "1 1")],
        rules=[("job:up:absent_cache", 'absent(up{job="cache"})'), ("job:up:absent_api", 'absent(up{job="api"})')],
        queries=[
            ('absent(up{job="cache"})', "1m"),
            ('absent(up{job="api"})', "1m"),
            ('absent(up{job="db"})', "8m"),
            ('absent(up{job="db"})', "6m"),
            ('absent(nonexistent{job="x", env=~"prod"})', "1m"),
            ('absent(nonexistent{job="x", job="y"})', "1m"),
            ("absent(nonexistent)", "1m"),
            ('absent(sum(nonexistent{job="x"}))', "1m"),
            ("job:up:absent_cache", "2m"),
            ("job:up:absent_api", "2m"),
        ],
    ),
    "absent_over_time": dict(
        doc="absent_over_time(): 1 when no point of any matching series lies in the range.",
        series=[('backup_ok{db="main"}', "1 _x10 1"), ('backup_ok{db="aux"}', "1")],
        rules=[("db:backup:absent5m", 'absent_over_time(backup_ok{db="main"}[5m])')],
        queries=[
            ('absent_over_time(backup_ok{db="main"}[5m])', "5m"),
            ('absent_over_time(backup_ok{db="main"}[5m])', "6m"),
            ('absent_over_time(backup_ok{db="main"}[5m])', "11m"),
            ('absent_over_time(backup_ok{db="aux"}[3m])', "4m"),
            ('absent_over_time(nope{a="b", c!="d"}[1m])', "1m"),
            ("db:backup:absent5m", "8m"),
        ],
    ),
    "abs_round": dict(
        doc="abs() and round() (with and without to_nearest); both drop the metric name.",
        series=[
            ('balance{acct="a"}', "-3.5 -2.5 -1.25 0 1.25 2.5 3.5"),
            ('balance{acct="b"}', "17.3 -17.3 0.05 -0.05 123.456 2 2"),
        ],
        rules=[("acct:balance:abs", "abs(balance)"), ("acct:balance:round10", "round(balance, 10)")],
        queries=[
            ("abs(balance)", "1m"),
            ("round(balance)", "0s"),
            ("round(balance)", "1m"),
            ("round(balance)", "4m"),
            ("round(balance, 0.1)", "4m"),
            ("round(balance, 5)", "0s"),
            ("acct:balance:abs", "2m"),
            ("acct:balance:round10", "4m"),
            ("round(balance)", "2m"),
        ],
    ),
    "clamp": dict(
        doc="clamp_min() and clamp_max() drop the metric name and bound values.",
        series=[('ratio{x="a"}', "-1 0.5 2"), ('ratio{x="b"}', "0.2 1.7 0.9")],
        rules=[("x:ratio:clamped", "clamp_max(clamp_min(ratio, 0), 1)")],
        queries=[
            ("clamp_min(ratio, 0)", "0s"),
            ("clamp_max(ratio, 1)", "1m"),
            ("clamp_max(clamp_min(ratio, 0), 1)", "2m"),
            ("x:ratio:clamped", "0s"),
            ('clamp_min(ratio, scalar(ratio{x="b"}))', "1m"),
        ],
    ),
    "time_vector_scalar": dict(
        doc="time(), vector() and scalar(): conversions between scalars and vectors.",
        series=[
            ('last_run_timestamp{job="a"}', "0 60 120 180 240 240 240"),
            ('single{a="1"}', "42 43 44"),
            ('pair{a="1"}', "1 1 1"),
            ('pair{a="2"}', "2 2 2"),
        ],
        rules=[("job:since_last_run", "time() - last_run_timestamp"), ("now", "time()"), ("const", "vector(7)")],
        queries=[
            ("time()", "5m"),
            ("time() - last_run_timestamp", "6m"),
            ("vector(1)", "1m"),
            ("vector(time())", "2m"),
            ("scalar(single)", "1m"),
            ("vector(scalar(single) * 2)", "2m"),
            ("job:since_last_run", "6m"),
            ("now", "3m"),
            ("const", "1m"),
            ('single * scalar(pair{a="2"})', "1m"),
        ],
    ),
    "histogram_quantile": dict(
        doc="histogram_quantile() over classic _bucket series (le labels), grouped by the other labels.",
        series=[
            ('req_duration_seconds_bucket{job="a", le="0.1"}', "0+10x10"),
            ('req_duration_seconds_bucket{job="a", le="0.5"}', "0+30x10"),
            ('req_duration_seconds_bucket{job="a", le="1"}', "0+40x10"),
            ('req_duration_seconds_bucket{job="a", le="+Inf"}', "0+50x10"),
            ('req_duration_seconds_bucket{job="b", le="0.1"}', "0+1x10"),
            ('req_duration_seconds_bucket{job="b", le="1"}', "0+1x10"),
            ('req_duration_seconds_bucket{job="b", le="+Inf"}', "0+4x10"),
        ],
        rules=[
            (
                "job:req_duration:p90",
                "histogram_quantile(0.9, sum by (job, le) (rate(req_duration_seconds_bucket[5m])))",
            ),
            ("job:req_duration:p50", "histogram_quantile(0.5, rate(req_duration_seconds_bucket[5m]))"),
        ],
        queries=[
            ("histogram_quantile(0.5, req_duration_seconds_bucket)", "5m"),
            ("histogram_quantile(0.9, req_duration_seconds_bucket)", "5m"),
            ("histogram_quantile(0.99, req_duration_seconds_bucket)", "5m"),
            ("histogram_quantile(0.1, req_duration_seconds_bucket)", "5m"),
            ("histogram_quantile(0.5, sum by (le) (req_duration_seconds_bucket))", "5m"),
            ("job:req_duration:p90", "6m"),
            ("job:req_duration:p50", "6m"),
            ("histogram_quantile(2, req_duration_seconds_bucket)", "5m"),
        ],
    ),
    "agg_sum_avg_count": dict(
        doc="sum, avg and count with by and without; aggregation drops the metric name.",
        series=[
            ('cpu_seconds{host="a", mode="user", dc="x"}', "1 2 3"),
            ('cpu_seconds{host="a", mode="sys", dc="x"}', "4 5 6"),
            ('cpu_seconds{host="b", mode="user", dc="y"}', "7 8 9"),
            ('cpu_seconds{host="b", mode="sys", dc="y"}', "10 11 12"),
        ],
        rules=[
            ("host:cpu_seconds:sum", "sum by (host) (cpu_seconds)"),
            ("mode:cpu_seconds:avg", "avg without (host, dc) (cpu_seconds)"),
            ("cpu_seconds:count", "count(cpu_seconds)"),
        ],
        queries=[
            ("sum(cpu_seconds)", "2m"),
            ("sum by (host) (cpu_seconds)", "1m"),
            ("sum without (mode) (cpu_seconds)", "1m"),
            ("avg by (dc) (cpu_seconds)", "2m"),
            ("avg(cpu_seconds)", "1m"),
            ("count by (mode) (cpu_seconds)", "0s"),
            ("count without (host, mode) (cpu_seconds)", "0s"),
            ("sum by (nolabel) (cpu_seconds)", "0s"),
            ("host:cpu_seconds:sum", "2m"),
            ("mode:cpu_seconds:avg", "2m"),
            ("cpu_seconds:count", "1m"),
            ("sum(nonexistent)", "1m"),
        ],
    ),
    "agg_min_max": dict(
        doc="min and max aggregations with by and without.",
        series=[
            ('queue_len{q="a", region="eu"}', "3 9 1"),
            ('queue_len{q="b", region="eu"}', "5 2 8"),
            ('queue_len{q="c", region="us"}', "-4 0 4"),
        ],
        rules=[
            ("region:queue_len:max", "max by (region) (queue_len)"),
            ("region:queue_len:min", "min without (q) (queue_len)"),
        ],
        queries=[
            ("max(queue_len)", "0s"),
            ("min(queue_len)", "1m"),
            ("max by (region) (queue_len)", "2m"),
            ("min without (q) (queue_len)", "2m"),
            ("region:queue_len:max", "1m"),
            ("region:queue_len:min", "0s"),
        ],
    ),
    "agg_quantile_stddev": dict(
        doc="quantile and stddev aggregations (population standard deviation).",
        series=[
            ('load{host="a", dc="x"}', "1 2"),
            ('load{host="b", dc="x"}', "2 4"),
            ('load{host="c", dc="x"}', "4 4"),
            ('load{host="d", dc="y"}', "8 5"),
            ('load{host="e", dc="y"}', "9 5"),
        ],
        rules=[("dc:load:stddev", "stddev by (dc) (load)"), ("dc:load:p50", "quantile by (dc) (0.5, load)")],
        queries=[
            ("stddev(load)", "0s"),
            ("stddev by (dc) (load)", "0s"),
            ("quantile(0.5, load)", "0s"),
            ("quantile(0.9, load)", "1m"),
            ("quantile without (host) (0.25, load)", "0s"),
            ("stddev(load)", "1m"),
            ("dc:load:stddev", "1m"),
            ("dc:load:p50", "0s"),
            ("quantile(1.2, load)", "0s"),
        ],
    ),
    "agg_topk_bottomk": dict(
        doc="topk and bottomk keep the original series (with metric name), per group.",
        series=[
            ('mem{pod="a", ns="x"}', "10 50"),
            ('mem{pod="b", ns="x"}', "30 20"),
            ('mem{pod="c", ns="x"}', "20 40"),
            ('mem{pod="d", ns="y"}', "5 1"),
            ('mem{pod="e", ns="y"}', "7 9"),
        ],
        rules=[("ns:mem:top1", "topk by (ns) (1, mem)", {"rank": "top"}), ("mem:bottom2", "bottomk(2, mem)")],
        queries=[
            ("topk(2, mem)", "0s"),
            ("bottomk(2, mem)", "1m"),
            ("topk by (ns) (1, mem)", "0s"),
            ("bottomk without (pod) (1, mem)", "1m"),
            ('topk(10, mem{ns="y"})', "0s"),
            ("topk(0, mem)", "0s"),
            ("ns:mem:top1", "1m"),
            ("mem:bottom2", "0s"),
            ('topk(scalar(count(mem{ns="y"})), mem)', "1m"),
        ],
    ),
    "arith_scalar_vector": dict(
        doc="Arithmetic between scalars and vectors: + - * / % ^; the metric name is dropped.",
        series=[('bytes{dev="a"}', "1024 2048 3072"), ('bytes{dev="b"}', "0 512 7")],
        rules=[("dev:kib", "bytes / 1024"), ("dev:pow", "2 ^ (bytes / 1024)"), ("answer", "6 * 7")],
        queries=[
            ("bytes / 1024", "1m"),
            ("bytes * 2 + 1", "0s"),
            ("1 - bytes", "1m"),
            ("bytes % 1000", "2m"),
            ("bytes ^ 0.5", "1m"),
            ("2 ^ 3 ^ 2", "0s"),
            ("-bytes", "0s"),
            ("bytes / 0", "1m"),
            ('100 / bytes{dev="a"}', "0s"),
            ("dev:kib", "2m"),
            ("dev:pow", "1m"),
            ("answer", "0s"),
            ("(1 + 2) * 3 - 4 / 2", "0s"),
            ("-bytes % 300", "2m"),
        ],
    ),
    "arith_vector_vector": dict(
        doc="Arithmetic between vectors, one-to-one on identical label sets (metric name ignored for matching).",
        series=[
            ('errors{svc="a"}', "1 2 3"),
            ('errors{svc="b"}', "0 5 10"),
            ('requests{svc="a"}', "10 20 30"),
            ('requests{svc="b"}', "10 20 40"),
            ('requests{svc="c"}', "1 1 1"),
        ],
        rules=[("svc:error_ratio", "errors / requests")],
        queries=[
            ("errors / requests", "1m"),
            ("requests - errors", "2m"),
            ("errors * requests", "0s"),
            ("requests % errors", "2m"),
            ("errors ^ errors", "1m"),
            ("svc:error_ratio", "2m"),
            ("errors + errors", "1m"),
        ],
    ),
    "comparison_filter": dict(
        doc="Comparison operators filter: scalar/vector and vector/vector; the metric name is kept.",
        series=[
            ('cpu{host="a"}', "0.5 0.9 0.95"),
            ('cpu{host="b"}', "0.2 0.3 0.99"),
            ('cpu_limit{host="a"}', "0.8 0.8 0.8"),
            ('cpu_limit{host="b"}', "0.25 0.5 1"),
        ],
        rules=[("host:cpu:over_limit", "cpu > cpu_limit"), ("host:cpu:hot", "cpu >= 0.9")],
        queries=[
            ("cpu > 0.4", "0s"),
            ("cpu < 0.4", "0s"),
            ("cpu == 0.9", "1m"),
            ("cpu != 0.9", "1m"),
            ("cpu >= 0.3", "1m"),
            ("cpu <= 0.3", "1m"),
            ("0.4 < cpu", "0s"),
            ("0.4 > cpu", "0s"),
            ("cpu > cpu_limit", "0s"),
            ("cpu < cpu_limit", "2m"),
            ("host:cpu:over_limit", "1m"),
            ("host:cpu:hot", "2m"),
            ("cpu + 1 > 1.9", "1m"),
        ],
    ),
    "comparison_bool": dict(
        doc="The bool modifier: comparisons return 0 or 1 instead of filtering, and drop the metric name.",
        series=[
            ('cpu{host="a"}', "0.5 0.9 0.95"),
            ('cpu{host="b"}', "0.2 0.3 0.99"),
            ('cpu_limit{host="a"}', "0.8 0.8 0.8"),
            ('cpu_limit{host="b"}', "0.25 0.5 1"),
        ],
        rules=[("host:cpu:over_limit_bool", "cpu > bool cpu_limit"), ("hosts_hot", "sum(cpu > bool 0.9)")],
        queries=[
            ("cpu > bool 0.4", "0s"),
            ("cpu == bool 0.9", "1m"),
            ("0.4 >= bool cpu", "0s"),
            ("cpu > bool cpu_limit", "0s"),
            ("cpu <= bool cpu_limit", "2m"),
            ("1 < bool 2", "0s"),
            ("2 != bool 2", "0s"),
            ("host:cpu:over_limit_bool", "1m"),
            ("hosts_hot", "2m"),
        ],
    ),
    "vector_matching_on_ignoring": dict(
        doc="One-to-one vector matching with on() and ignoring(); unmatched series are dropped.",
        series=[
            ('errors{svc="a", code="500", inst="1"}', "1 2 3"),
            ('errors{svc="b", code="500", inst="1"}', "4 5 6"),
            ('requests{svc="a", inst="1"}', "10 20 30"),
            ('requests{svc="b", inst="1"}', "40 50 60"),
            ('requests{svc="c", inst="1"}', "1 1 1"),
            ('limits{svc="a", tier="gold"}', "100 100 100"),
        ],
        rules=[("svc:error_ratio", "errors / ignoring(code) requests"), ("svc:headroom", "limits - on(svc) requests")],
        queries=[
            ("errors / ignoring(code) requests", "1m"),
            ("errors / on(svc, inst) requests", "2m"),
            ("errors + on(svc) requests", "0s"),
            ("errors / requests", "0s"),
            ("limits - on(svc) requests", "1m"),
            ("errors > ignoring(code) requests / 10", "2m"),
            ("errors > bool on(svc) requests / 10", "1m"),
            ("svc:error_ratio", "2m"),
            ("svc:headroom", "2m"),
        ],
    ),
    "group_left_right": dict(
        doc="Many-to-one and one-to-many matching with group_left / group_right, copying labels from the one side.",
        series=[
            ('http_requests{job="api", inst="1", path="/a"}', "10 20"),
            ('http_requests{job="api", inst="1", path="/b"}', "30 40"),
            ('http_requests{job="api", inst="2", path="/a"}', "50 60"),
            ('machine_info{inst="1", region="eu", owner="ops"}', "1 1"),
            ('machine_info{inst="2", region="us", owner="dev"}', "1 1"),
            ('job_weight{job="api"}', "2 3"),
        ],
        rules=[
            ("inst:http_requests:with_region", "http_requests * on(inst) group_left(region) machine_info"),
            ("http_requests:weighted", "job_weight * on(job) group_right http_requests"),
        ],
        queries=[
            ("http_requests * on(inst) group_left(region) machine_info", "0s"),
            ("http_requests * on(inst) group_left(region, owner) machine_info", "1m"),
            ("http_requests * on(inst) group_left machine_info", "1m"),
            ("machine_info * on(inst) group_right(region) http_requests", "0s"),
            ("job_weight * on(job) group_right http_requests", "1m"),
            ("http_requests / ignoring(path) group_left sum without (path) (http_requests)", "1m"),
            ("http_requests > on(inst) group_left machine_info * 25", "1m"),
            ("inst:http_requests:with_region", "1m"),
            ("http_requests:weighted", "0s"),
        ],
    ),
    "set_operators": dict(
        doc="and, or, unless: many-to-many set operations by label set, with on() and ignoring(); names kept.",
        series=[
            ('up{job="a", inst="1"}', "1 1"),
            ('up{job="a", inst="2"}', "0 0"),
            ('up{job="b", inst="3"}', "1 0"),
            ('alerting{job="a", inst="2"}', "1 1"),
            ('maintenance{job="b"}', "1 1"),
        ],
        rules=[("down_and_not_maint", "(up == 0) unless on(job) maintenance"), ("up_or_alerting", "up or alerting")],
        queries=[
            ("up and alerting", "0s"),
            ("up and on(job) maintenance", "0s"),
            ("up or alerting", "0s"),
            ("alerting or up", "0s"),
            ("up unless alerting", "0s"),
            ("up unless on(job) maintenance", "1m"),
            ("up and ignoring(inst) maintenance", "0s"),
            ("up == 0 or vector(0)", "1m"),
            ('nonexistent or up{job="b"}', "0s"),
            ("up and nonexistent", "0s"),
            ("down_and_not_maint", "1m"),
            ("up_or_alerting", "1m"),
        ],
    ),
    "recording_chain": dict(
        doc="Recording rules reading other recording rules in the same group, with extra labels.",
        series=[
            ('node_cpu_seconds_total{cpu="0", mode="idle", instance="n1"}', "0+50x20"),
            ('node_cpu_seconds_total{cpu="1", mode="idle", instance="n1"}', "0+40x20"),
            ('node_cpu_seconds_total{cpu="0", mode="user", instance="n1"}', "0+10x20"),
            ('node_cpu_seconds_total{cpu="1", mode="user", instance="n1"}', "0+20x20"),
        ],
        rules=[
            ("instance_mode:node_cpu:rate5m", "sum by (instance, mode) (rate(node_cpu_seconds_total[5m]))"),
            (
                "instance:node_cpu_busy:ratio",
                '1 - instance_mode:node_cpu:rate5m{mode="idle"}'
                " / ignoring(mode) sum without (mode) (instance_mode:node_cpu:rate5m)",
                {"team": "infra"},
            ),
        ],
        queries=[
            ("instance_mode:node_cpu:rate5m", "10m"),
            ("instance:node_cpu_busy:ratio", "10m"),
            ("instance:node_cpu_busy:ratio", "20m"),
        ],
    ),
    "precedence_unary": dict(
        doc="Operator precedence, parentheses and unary minus on scalars and vectors.",
        series=[('x{i="1"}', "2 3"), ('x{i="2"}', "-4 5")],
        rules=[("x:neg", "-x"), ("x:expr", "-x ^ 2 + 1")],
        queries=[
            ("-x", "0s"),
            ("-x ^ 2", "0s"),
            ("(-x) ^ 2", "0s"),
            ("x * 2 + 3 * x", "1m"),
            ("x - -x", "1m"),
            ("2 * (x + 1) / 4", "0s"),
            ("-(x > 0)", "0s"),
            ("x:neg", "1m"),
            ("x:expr", "0s"),
            ("-1 * -2 ^ 2", "0s"),
        ],
    ),
    "special_values": dict(
        doc="Inf and negative values flowing through functions and aggregations.",
        series=[('v{k="a"}', "Inf 1 -Inf"), ('v{k="b"}', "1 -Inf 2"), ('v{k="c"}', "-Inf 2 3")],
        rules=[("v:max", "max(v)"), ("v:sum", "sum(v)")],
        queries=[
            ("max(v)", "0s"),
            ("min(v)", "0s"),
            ("clamp_max(v, 10)", "0s"),
            ("abs(v)", "1m"),
            ("v:max", "2m"),
            ("v:sum", "1m"),
            ("max_over_time(v[2m])", "2m"),
            ("topk(1, v)", "2m"),
            ("avg(v)", "1m"),
        ],
    ),
    "resolution_seconds": dict(
        doc="Sub-minute sample interval and evaluation interval; ranges shorter than a minute.",
        interval="15s",
        eval="15s",
        series=[('req_total{p="x"}', "0+15x40"), ('gauge{p="x"}', "0 1 2 3 4 5 6 7 8 9 10")],
        rules=[("p:req:rate1m", "rate(req_total[1m])"), ("p:gauge:avg30s", "avg_over_time(gauge[30s])")],
        queries=[
            ("rate(req_total[1m])", "5m"),
            ("rate(req_total[45s])", "2m"),
            ("irate(req_total[1m])", "1m"),
            ("avg_over_time(gauge[30s])", "1m"),
            ("p:req:rate1m", "3m"),
            ("p:gauge:avg30s", "2m15s"),
            ("gauge", "4m"),
            ("count_over_time(gauge[1m])", "2m30s"),
        ],
    ),
    "math_functions": dict(
        doc="ceil, floor, sqrt, exp, ln, log2, log10, sgn: functions of each value that drop the metric name.",
        series=[('v{k="a"}', "0.5 2 10 1024"), ('v{k="b"}', "1234.5678 3.14159 0.001 7e-5"),
                ('n{k="c"}', "-3.7 -0.2 0 4.5")],
        rules=[("k:v:log10", "log10(v)"), ("k:n:sgn", "sgn(n)")],
        queries=[
            ("ceil(v)", "0s"), ("ceil(n)", "1m"), ("floor(v)", "1m"), ("floor(n)", "0s"), ("sqrt(v)", "0s"),
            ("sqrt(v)", "2m"), ("exp(v)", "0s"), ("exp(n)", "1m"), ("exp(v)", "2m"), ("ln(v)", "0s"), ("ln(v)", "1m"),
            ("ln(v)", "3m"), ("log2(v)", "0s"), ("log2(v)", "2m"), ("log2(v)", "3m"), ("log10(v)", "1m"),
            ("log10(v)", "3m"), ("k:v:log10", "2m"), ("sgn(n)", "0s"), ("k:n:sgn", "3m"), ("exp(ln(v))", "1m"),
        ],
    ),
    "trig_functions": dict(
        doc="Trigonometric and hyperbolic functions, deg, rad and pi() (Go's own sin/cos/... can differ from libm's "
            "in the last bit: such cases are in the differential test, compared to 1e-15).",
        series=[('u{k="a"}', "0.5 -0.25 0.9"), ('u{k="b"}', "0.1 0.75 -0.6"), ('w{k="c"}', "1.5 2 10"),
                ('v{k="d"}', "3 -1.2 100")],
        rules=[("k:u:asin", "asin(u)"), ("k:v:deg", "deg(v)")],
        queries=[
            ("sin(v)", "0s"), ("sin(v)", "2m"), ("cos(v)", "1m"), ("tan(v)", "0s"),
            ("asin(u)", "1m"), ("acos(u)", "2m"), ("atan(v)", "1m"),
            ("cosh(v)", "1m"), ("tanh(v)", "0s"), ("asinh(v)", "2m"), ("acosh(w)", "0s"), ("acosh(w)", "2m"),
            ("atanh(u)", "1m"), ("deg(u)", "0s"), ("rad(v)", "1m"), ("pi()", "0s"), ("v * pi()", "2m"),
            ("k:u:asin", "1m"), ("k:v:deg", "1m"),
        ],
    ),
    "label_replace_join": dict(
        doc="label_replace (anchored RE2, $1 / ${1} / named groups, no match keeps the series) and label_join.",
        series=[('up{job="api-server", instance="10.0.0.1:9100", env="prod"}', "1 1"),
                ('up{job="db", instance="db-1.example.com:5432", env="dev"}', "0 1")],
        rules=[
            ("up:host", 'label_replace(up, "host", "$1", "instance", "(.*):.*")'),
            ("up:joined", 'label_join(up, "id", "/", "env", "job")'),
        ],
        queries=[
            ('label_replace(up, "host", "$1", "instance", "(.*):.*")', "0s"),
            ('label_replace(up, "port", "${2}", "instance", "(.*):(\\\\d+)")', "1m"),
            ('label_replace(up, "x", "$1x", "job", "(.*)")', "0s"),
            ('label_replace(up, "x", "${1}x", "job", "(.*)")', "0s"),
            ('label_replace(up, "x", "$name-$$", "job", "(?P<name>[a-z]+).*")', "1m"),
            ('label_replace(up, "job", "", "job", "db")', "1m"),
            ('label_replace(up, "job", "$1", "job", "api")', "0s"),
            ('label_replace(up, "tier", "$1", "job", "(API)-.*")', "0s"),
            ('label_replace(up, "tier", "$1", "job", "(?i)(API)-.*")', "0s"),
            ('label_replace(up, "__name__", "renamed", "", "")', "1m"),
            ('label_join(up, "id", "/", "env", "job")', "0s"),
            ('label_join(up, "id", "", "nothing")', "1m"),
            ('label_join(up, "env", "-", "env", "env")', "1m"),
            ("up:host", "1m"),
            ("up:joined", "0s"),
        ],
    ),
    "timestamp_date": dict(
        doc="timestamp() of selectors (the sample's own time) and expressions, and the date functions (UTC).",
        series=[('last_seen{k="a"}', "1 _ 3 _ _ _ _"), ('epoch{k="b"}', "1136239445 1700000000 951782400 -86401")],
        rules=[("k:last_seen:ts", "timestamp(last_seen)"), ("k:epoch:year", "year(epoch)")],
        queries=[
            ("timestamp(last_seen)", "3m"), ("timestamp(last_seen offset 1m)", "3m"), ("timestamp(last_seen)", "7m"),
            ("timestamp(sum(last_seen))", "3m"), ("timestamp(vector(1))", "1m30s"), ("k:last_seen:ts", "4m"),
            ("year(epoch)", "0s"), ("month(epoch)", "1m"), ("day_of_month(epoch)", "2m"), ("day_of_week(epoch)", "0s"),
            ("day_of_week(epoch)", "3m"), ("day_of_year(epoch)", "2m"), ("days_in_month(epoch)", "2m"),
            ("days_in_month(epoch)", "1m"), ("hour(epoch)", "0s"), ("minute(epoch)", "0s"), ("hour(epoch)", "3m"),
            ("year()", "5m"), ("month()", "5m"), ("day_of_month()", "5m"), ("hour()", "2h5m"), ("minute()", "2h5m"),
            ("days_in_month()", "0s"), ("day_of_week()", "0s"), ("day_of_year()", "0s"), ("k:epoch:year", "1m"),
        ],
    ),
    "over_time_stats": dict(
        doc="stddev/stdvar_over_time (Kahan-compensated Welford), present_over_time, idelta and holt_winters.",
        series=[('g{k="a"}', "1 5 2 8 3 9 4 12 1 7"), ('g{k="b"}', "100.5 100.25 101 99.75 100 102.5 98 100 101 99"),
                ('c_total{k="a"}', "0 3 7 12 2 9 15 20 21 30")],
        rules=[("k:g:stddev5m", "stddev_over_time(g[5m])"), ("k:g:hw", "holt_winters(g[5m], 0.5, 0.3)")],
        queries=[
            ("stddev_over_time(g[5m])", "5m"), ("stddev_over_time(g[3m])", "9m"), ("stdvar_over_time(g[5m])", "5m"),
            ("stdvar_over_time(g[10m])", "9m"), ("stddev_over_time(g[1m])", "1m"), ("present_over_time(g[2m])", "3m"),
            ('present_over_time(g{k="a"}[1m])', "15m"), ("idelta(c_total[5m])", "4m"), ("idelta(g[3m])", "9m"),
            ("idelta(c_total[1m])", "0s"), ("holt_winters(g[5m], 0.5, 0.3)", "9m"),
            ("holt_winters(g[10m], 0.1, 0.9)", "9m"), ("holt_winters(c_total[3m], 0.8, 0.2)", "6m"),
            ("k:g:stddev5m", "8m"), ("k:g:hw", "7m"),
        ],
    ),
    "agg_group_count_values_stdvar": dict(
        doc="group, count_values (values as labels), stdvar; sort/sort_desc; clamp; the atan2 operator.",
        series=[('version{job="a", inst="1"}', "1 2"), ('version{job="a", inst="2"}', "1 2"),
                ('version{job="b", inst="3"}', "2.5 1e21"), ('lat{job="a"}', "0.25 -3"), ('lat{job="b"}', "4 1.5")],
        rules=[("job:version:group", "group by (job) (version)"), ("version:count", 'count_values("v", version)')],
        queries=[
            ("group(version)", "0s"), ("group by (job) (version)", "1m"), ("group without (inst) (version)", "0s"),
            ('count_values("v", version)', "0s"), ('count_values("v", version)', "1m"),
            ('count_values by (job) ("v", version)', "0s"), ('count_values without (inst) ("ver", version)', "0s"),
            ("stdvar(version)", "0s"), ("stdvar by (job) (lat)", "1m"), ("stdvar(lat)", "1m"), ("sort(lat)", "0s"),
            ("sort_desc(version)", "0s"), ("clamp(lat, 0, 2)", "0s"), ("clamp(lat, -1, 1)", "1m"),
            ("clamp(lat, 2, 1)", "0s"),
            ("2 atan2 lat", "0s"), ("lat atan2 lat", "1m"), ("version atan2 version", "0s"),
            ("job:version:group", "1m"), ("version:count", "0s"),
        ],
    ),
    "regex_re2": dict(
        doc="Label matchers in Go RE2 syntax: inline flags anywhere, POSIX classes, ASCII-only \\\\d, anchoring.",
        series=[('q{group="production", n="1"}', "1"), ('q{group="PROD-eu", n="2"}', "2"),
                ('q{group="staging", n="3"}', "3"), ('q{group="Pre-PROD", n="4"}', "4"),
                ('q{group="a1b2", n="5"}', "5")],
        rules=[("q:prod", 'q{group=~"((?i)PRO).*"}')],
        queries=[
            ('q{group=~"((?i)PRO).*"}', "0s"), ('q{group=~"pre-(?i)prod"}', "0s"), ('q{group=~"(?i:pre)-PROD"}', "0s"),
            ('q{group=~"[[:alpha:]]+"}', "0s"), ('q{group!~"[[:alpha:]-]+"}', "0s"),
            ('q{group=~"(\\\\w\\\\d)+"}', "0s"),
            ('q{group=~"prod"}', "0s"), ('q{group=~"PROD|staging"}', "0s"), ('q{group=~"(?i)prod.*|STAG.*"}', "0s"),
            ('q{group=~".*(?i)-EU"}', "0s"), ("q:prod", "0s"),
        ],
    ),
    "subquery_at": dict(
        doc="Subqueries (with and without step, offset, nested in functions) and the @ modifier (numbers, "
            "start(), end()), both closed at the left end as in Prometheus 2.",
        series=[('http_requests{job="api"}', "0+10x60"), ('g{k="a"}', "1 5 2 8 3 9 4 12 1 7 0 3 6"),
                ('g{k="b"}', "2 2 3 3 4 4 5 5 6 6 7 7 8")],
        rules=[("k:g:max5m", "max_over_time(g[5m:1m])"), ("k:g:at", "g @ 120")],
        queries=[
            ("rate(http_requests[5m:1m])", "10m"), ("rate(http_requests[5m:30s])", "10m"),
            ("rate(http_requests[5m:])", "10m"), ("max_over_time(g[5m:1m])", "8m"), ("max_over_time(g[4m:90s])", "8m"),
            ("avg_over_time(rate(http_requests[2m])[5m:1m])", "12m"), ("min_over_time(g[10m:2m] offset 1m)", "12m"),
            ("sum_over_time(sum(g)[3m:1m])", "5m"), ("count_over_time(g[5m:1m])", "2m"),
            ("last_over_time(g[3m:1m])", "20m"), ("count_over_time(g[10m:1m])", "20m"),
            ("quantile_over_time(0.5, g[6m:1m])", "9m"), ("deriv(g[5m:1m])", "7m"), ("changes(g[10m:1m])", "12m"),
            ("absent_over_time(nothing[5m:1m])", "3m"), ("absent_over_time(g[5m:1m])", "3m"),
            ("max_over_time(max_over_time(g[2m:1m])[4m:2m])", "10m"), ("g @ 120", "10m"), ("g @ 180", "0s"),
            ("g offset 1m @ 300", "0s"), ("sum(g @ 240)", "0s"), ("rate(http_requests[2m] @ 300)", "20m"),
            ("g @ start()", "5m"), ("g @ end()", "5m"), ("max_over_time(g[5m:1m] @ 360)", "0s"),
            ("timestamp(g @ 200)", "10m"), ("rate(http_requests[5m:1m] @ 600 offset 2m)", "0s"),
            ("k:g:max5m", "9m"), ("k:g:at", "7m"),
        ],
    ),
    "promtool_sample_loading": dict(
        doc="promtool 2.42 loads input samples up to the last evaluation tick at or before the latest eval_time: "
            "a query between ticks does not see the samples after the tick (and Watchkeeper's runner does the same).",
        interval="15s",
        series=[('x{k="a"}', "0+1x40"), ('c_total{k="a"}', "0+15x40")],
        rules=[("k:x:max1m", "max_over_time(x[1m])")],
        queries=[
            ("x", "1m45s"), ("count_over_time(x[1m])", "1m45s"), ("max_over_time(x[30s:15s])", "2m50s"),
            ("rate(c_total[1m])", "4m25s"), ("k:x:max1m", "3m59s"), ("x", "4m20s"), ("timestamp(x)", "4m50s"),
        ],
    ),
}


def parse_got(text: str) -> list[tuple[str, str]]:
    """promtool's "got:" line: `{a="b", c="d"} 1.5E+00, {...} ...` to (labels, value) pairs."""
    if text.strip() == "nil":
        return []
    return [(m.group(1), m.group(2)) for m in re.finditer(r"(\{[^}]*\}) (\S+?)(?:, |$)", text.strip())]


def labels_readable(lbl: str) -> str:
    """`{__name__="x", a="b"}` to `x{a="b"}`, the way a person writes it."""
    pairs = re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', lbl)
    name = [v for k, v in pairs if k == "__name__"]
    rest = ", ".join(f'{k}="{v}"' for k, v in pairs if k != "__name__")
    if name:
        return f"{name[0]}{{{rest}}}" if rest else name[0]
    return "{" + rest + "}"


def value_yaml(v: str) -> str:
    """Go's %E float to the shortest YAML float that parses back to the same bits."""
    f = float(v)
    if f == float("inf"):
        return ".inf"
    if f == float("-inf"):
        return "-.inf"
    if f != f:
        raise ValueError("NaN")
    return repr(f) if f != int(f) or abs(f) > 1e15 else str(int(f))


def main() -> None:
    only = set(sys.argv[1:])
    for name, spec in SPECS.items():
        if not only or name in only:
            generate(name, spec)


def generate(name: str, spec: dict[str, Any]) -> None:
    rules_file = OUT / f"{name}.rules.yml"
    test_file = OUT / f"{name}.test.yml"
    rules = [{"record": r[0], "expr": r[1], **({"labels": r[2]} if len(r) > 2 else {})} for r in spec["rules"]]
    rules_file.write_text(
        f"# {spec['doc']}\n" + yaml.safe_dump({"groups": [{"name": name, "rules": rules}]}, sort_keys=False, width=200)
    )
    queries = spec["queries"]

    def render(exps: list[list[tuple[str, str]]]) -> str:
        lines = [
            f"# {spec['doc']}",
            "# Expected values are promtool's (Prometheus 2.42) results.",
            f"rule_files: [{rules_file.name}]",
            f"evaluation_interval: {spec.get('eval', '1m')}",
            "tests:",
            f"  - interval: {spec.get('interval', '1m')}",
            "    input_series:",
        ]
        for s, v in spec["series"]:
            lines += [f"      - series: '{s}'", f"        values: '{v}'"]
        lines.append("    promql_expr_test:")
        for (expr, t), exp in zip(queries, exps, strict=True):
            lines += [f"      - expr: '{expr}'", f"        eval_time: {t}"]
            if not exp:
                lines.append("        exp_samples: []")
                continue
            lines.append("        exp_samples:")
            for lbl, val in exp:
                lines += [f"          - labels: '{labels_readable(lbl)}'", f"            value: {value_yaml(val)}"]
        return "\n".join(lines) + "\n"

    test_file.write_text(render([[] for _ in queries]))
    r = subprocess.run(["promtool", "test", "rules", test_file.name], cwd=OUT, capture_output=True, text=True)
    out = r.stdout + r.stderr
    exps: list[list[tuple[str, str]]] = [[] for _ in queries]
    blocks = re.findall(r'expr: "(.*?)", time: (\S+),\n\s+exp: .*\n\s+got: (.*)', out)
    if r.returncode != 0 and not blocks:
        print("ERROR", name, out)
        return
    for expr, t, got in blocks:
        expr = expr.encode().decode("unicode_escape")
        for i, (qe, qt) in enumerate(queries):
            if qe == expr and qt == t and not exps[i]:
                exps[i] = parse_got(got)
                break
    try:
        test_file.write_text(render(exps))
    except ValueError:
        print("NaN in", name, out)
        return
    r = subprocess.run(["promtool", "test", "rules", test_file.name], cwd=OUT, capture_output=True, text=True)
    print(name, "OK" if r.returncode == 0 else "FAIL\n" + r.stdout + r.stderr)


if __name__ == "__main__":
    main()

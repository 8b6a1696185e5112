"""What rules cost per sample on one store and partitioned, and what that lets 1, 2, 4 ... processes sustain.

Pure, in one process, no Kafka: the work each stage does, timed as CPU seconds (`time.process_time`) per
second of event time. Workload (`workload.py`, as `engine_tick.py`): 100 rules in 10 groups (`interval:
30s`) over 200,000 series scraped every 15 s (13,333 samples/s), one samples message per instance and
scrape (200 series), keyed by the instance, on 8 samples partitions (Kafka's murmur2 partitioner). Each
store first gets `--history` seconds of points appended directly (not measured), then `--warmup` seconds
go through the stage (engines started, not measured), then `--ticks` rule ticks are measured.

- **baseline**: the bare `SeriesStore.append` of the same points (per series, a tick at a time), in the
  same run: the ratios say what each stage costs on top of merely holding the data.
- **single store** (`full`, today's path): `RulesStep` as the worker runs it: every message decoded
  (`ingest`) into one store, the rule units advanced by the watermark (`advance`, `RuleEngine`).
- **partitioned**: the partial stage (`agents.rules_partial_step.PartialStep`, what the worker runs over
  the samples partitions it owns) per samples partition, a batch per scrape: its messages into its own
  store and, once its watermark passes a tick, every rule's partials (`sharding.partial`), one record per
  unit; then the merge stage (`RulesMergeStep` from `agents.rules_merge_wiring`, the worker's), owning
  every unit, reads the records in partition order: decode, `sharding.merge`, the `RuleEngine` on the
  merged leaves (the rest of each expression, alert states, recorded samples). A second merge step that
  owns no unit reads every record too: what each other process does with the partials topic (`read`).
  The alert transitions must equal the single store's (checked, printed).

From those, per process at the measured rate R0 (every cost taken to grow in proportion to the rate:
more series at the same scrape interval): a process is one thread, so the busiest one may need at most a
core: its share of the partial work (partial / P; partitions are not split, so P <= 8 here) + the merge
work of the units it owns (all of them, or spread evenly: at least the largest unit) + its read of the
whole partials topic; and all processes together (partial + merge + P x read) share the machine's cores.
max rate(P) = R0 / max(busiest, total / cores). Not in this model: what a process costs besides these
stages (Kafka clients, consumer groups, the window agent of the same worker); `alert_delay.py
--processes N` measures that end to end.

Run: PYTHONPATH=. nice -n 10 python bench/rules/scaling.py [--series 200000] [--rules 100] [--ticks 4]
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from aiokafka.partitioner import DefaultPartitioner

from bench.rules.workload import INTERVAL, SCRAPE, T0, Series, points, rule_file, scrape_messages, series_labels
from watchkeeper.agents.rules_step import Mark
from watchkeeper.agents.rules_wiring import LoadedRules, loaded_rules
from watchkeeper.core.promql.evaluator import DEFAULT_SEMANTICS, SEMANTICS
from watchkeeper.core.promql.series_store import SeriesStore
from watchkeeper.core.rules.loader import RuleGroup, load_rule_files
from watchkeeper.schemas.topics import DEFAULT_TOPICS

LATENESS = 5.0
CORES = os.cpu_count() or 1
Batch = list[tuple[str, dict[str, str], np.ndarray, np.ndarray]]


def cpu() -> float:
    return time.process_time()


@dataclass
class Workload:
    series: list[Series]
    groups: list[RuleGroup]
    loaded: LoadedRules
    partitions: int
    history: Batch  # points before the first warm-up scrape, appended directly
    ticks: list[tuple[float, list[tuple[float, list[tuple[int, bytes, bytes]]]]]]  # tick -> its scrapes
    warmup_ticks: int
    samples: int  # measured samples (the scrapes of the measured ticks)
    event_seconds: float
    tick_points: list[Batch]  # the measured ticks' points, for the baseline
    semantics: Any


def build(n_series: int, n_rules: int, n_ticks: int, warmup: float, history: float, partitions: int,
          semantics: str) -> Workload:
    """The series, the rules and every message, made before anything is timed."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.rules.yml"
        path.write_text(rule_file(n_rules))
        groups = load_rule_files([str(path)], semantics=semantics)  # type: ignore[arg-type]
    loaded = loaded_rules(groups, 1, LATENESS, semantics)  # type: ignore[arg-type]
    rng = np.random.default_rng(1)
    series = series_labels(n_series)
    first = T0 - warmup
    hist = points(series, first - history, first, rng)
    part = DefaultPartitioner()
    all_parts = list(range(partitions))
    ticks = []
    tick_points = []
    samples = 0
    n_warm = int(warmup // INTERVAL)
    # Tick t is evaluated once the scrape at t + SCRAPE is read (watermark = newest - LATENESS >= t): a
    # tick's scrapes are those in (t - INTERVAL + SCRAPE, t + SCRAPE].
    start = first
    for k in range(-n_warm, n_ticks):
        t = T0 + k * INTERVAL
        batch = points(series, start, t + SCRAPE + 1e-6, rng)
        start = float(batch[0][2][-1]) + SCRAPE
        scrapes = []
        for ts, msgs in scrape_messages(batch, series):
            scrapes.append((ts, [(part(key, all_parts, all_parts), key, value) for key, value in msgs]))
        ticks.append((t, scrapes))
        if k >= 0:
            tick_points.append(batch)
            samples += sum(len(b[2]) for b in batch)
    return Workload(series, groups, loaded, partitions, hist, ticks, n_warm, samples, n_ticks * INTERVAL,
                    tick_points, semantics)


def prefill(store: SeriesStore, history: Batch, keep: Callable[[dict[str, str]], bool] = lambda labels: True) -> None:
    for name, labels, ts, values in history:
        if keep(labels):
            store.append(name, labels, ts, values)


def alert_ids(outputs: list[Any]) -> list[tuple[str, str, float]]:
    """(fingerprint, state, tick) of every alert transition: both paths must give the same."""
    out = []
    for o in outputs:
        for _, raw in o.alerts:
            a = orjson.loads(raw)
            out.append((a["fingerprint"], a["state"], a["event_time"]))
    return out


# -- baseline -------------------------------------------------------------------------------------------

def baseline(w: Workload) -> float:
    """CPU seconds of the bare store append of the measured points (a tick at a time, per series)."""
    store = SeriesStore(w.loaded.retention)
    prefill(store, w.history)
    spent = 0.0
    for batch in w.tick_points:
        c0 = cpu()
        for name, labels, ts, values in batch:
            store.append(name, labels, ts, values)
        spent += cpu() - c0
    return spent


# -- single store (today's `full` path) -------------------------------------------------------------------

def single_store(w: Workload) -> dict[str, float]:
    """`RulesStep` with every unit owned, reading every partition: CPU of ingest and of advance."""
    step = w.loaded.step_factory("bench")
    prefill(step.store, w.history)
    for p in range(w.partitions):
        step.start(p, Mark(0, -math.inf, -math.inf))
        step.seen_end(p, 0)  # a live start: what comes is new
    step.own(0, None)
    ingest = evaluate = 0.0
    offsets = [0] * w.partitions
    alerts = recorded = 0
    transitions: list[tuple[str, str, float]] = []
    for k, (_, scrapes) in enumerate(w.ticks):
        measured = k >= w.warmup_ticks
        for ts, msgs in scrapes:
            c0 = cpu()
            for p, key, value in msgs:
                step.ingest(p, offsets[p], key, value, ts)
                offsets[p] += 1
            step.flush()
            c1 = cpu()
            outputs = step.advance()
            c2 = cpu()
            transitions.extend(alert_ids(outputs))
            if measured:
                ingest += c1 - c0
                evaluate += c2 - c1
                alerts += sum(len(o.alerts) for o in outputs)
                recorded += sum(len(o.recorded) for o in outputs)
    assert step.late == 0 and step.failures == 0, (step.late, step.failures)
    return {"ingest": ingest, "evaluate": evaluate, "alert_messages": alerts, "recorded_messages": recorded,
            "alerts": transitions}


# -- partitioned -----------------------------------------------------------------------------------------

@dataclass
class PartitionCost:
    ingest: float = 0.0  # the rest of PartialStep.process_records: decode, clocks, store append, records
    partial: float = 0.0  # sharding.partial + partials_to_json of every rule due (PartialStep._partial)
    records: int = 0
    bytes: int = 0


@dataclass
class MergeCost:
    read_owned: float = 0.0  # RulesMergeStep.ingest of every record (its units owned: decoded)
    read_all: float = 0.0  # RulesMergeStep.ingest of every record by a process owning no unit (tick only)
    merge: float = 0.0  # sharding.merge (partials_from_json + merge), inside the engine's leaves callback
    engine: float = 0.0  # the rest of RulesMergeStep.advance: RuleEngine on the merged leaves, alert states
    alerts: int = 0
    recorded: int = 0
    transitions: list[tuple[str, str, float]] = field(default_factory=list)
    per_unit: dict[str, float] = field(default_factory=dict)  # decode + merge + engine of each unit


def partitioned(w: Workload) -> tuple[list[PartitionCost], MergeCost, list[str]]:
    """The partial stage (`PartialStep`, what the worker runs over the samples partitions it owns) per
    samples partition, a batch per scrape, then its records in partition order into the merge stage
    (`RulesMergeStep` from `merge_step_factory`, the worker's), which owns every unit; and a second merge
    step owning none reads every record too (what every other process does with the partials topic)."""
    from watchkeeper.agents.rules_merge_wiring import merge_step_factory
    from watchkeeper.agents.rules_partial_step import PartialStep
    from watchkeeper.core.rules.unit_plans import unit_plans

    loaded = w.loaded
    plans = unit_plans(loaded.units, loaded.groups)
    shapes = sorted({re.sub(r"\bm\d+_", "m*_", p.describe()) for up in plans for ps in up.plans.values() for p in ps})
    partial = PartialStep(plans, loaded.limits, retention=loaded.history)
    in_partial = [0.0]
    rule_partial = partial._partial

    def timed_partial(plan: Any, t: float, store: SeriesStore) -> Any:
        c0 = cpu()
        try:
            return rule_partial(plan, t, store)
        finally:
            in_partial[0] += cpu() - c0

    partial._partial = timed_partial  # type: ignore[method-assign]
    instance_part = {key.decode(): p for _, scrapes in w.ticks[:1] for _, msgs in scrapes[:1] for p, key, _ in msgs}
    for p in range(w.partitions):
        partial.restore(p, None)
        prefill(partial.parts[p].buffer.store, w.history, lambda labels, p=p: instance_part[labels["instance"]] == p)
    costs = [PartitionCost() for _ in range(w.partitions)]

    make = merge_step_factory(loaded, 1, w.semantics)
    merger, reader = make("bench"), make("reader")  # owns every unit / owns none: the read every process does
    mc = MergeCost()
    merge_leaves = merger.merge_leaves
    in_merge = [0.0]

    def timed_merge(group: str, rule: int, parts: Any) -> Any:
        c0 = cpu()
        try:
            return merge_leaves(group, rule, parts)
        finally:
            in_merge[0] += cpu() - c0

    merger.merge_leaves = timed_merge
    advance_unit = merger._advance_unit
    unit_cpu: dict[str, float] = {}

    def timed_unit(st: Any, more: Any) -> Any:
        c0 = cpu()
        try:
            return advance_unit(st, more)
        finally:
            unit_cpu[st.unit.key] = unit_cpu.get(st.unit.key, 0.0) + cpu() - c0

    merger._advance_unit = timed_unit  # type: ignore[method-assign]
    merger.own(0, None)
    for p in range(w.partitions):
        merger.start(p, 0)
        reader.start(p, 0)
    in_offsets = [0] * w.partitions
    out_offsets = [0] * w.partitions

    def send(p: int, records: list[tuple[bytes, bytes]], headers: list[list[tuple[str, bytes]]],
             measured: bool) -> None:
        for (key, value), hs in zip(records, headers, strict=True):
            c0 = cpu()
            merger.ingest(p, out_offsets[p], key, value, hs)
            c1 = cpu()
            reader.ingest(p, out_offsets[p], key, value, hs)
            c2 = cpu()
            out_offsets[p] += 1
            if measured:
                mc.read_owned += c1 - c0
                mc.read_all += c2 - c1
                if key != b"~wm":
                    unit_cpu[key.decode()] = unit_cpu.get(key.decode(), 0.0) + c1 - c0
                    costs[p].records += 1
                    costs[p].bytes += len(value)

    empty = set(range(w.partitions)) - set(instance_part.values())
    for p in empty:  # a partition that never has a sample says so once (the runtime's idle tick)
        out = partial.tick(p)
        send(p, out.records, out.headers, False)
    for k, (_, scrapes) in enumerate(w.ticks):
        measured = k >= w.warmup_ticks
        if k == w.warmup_ticks:
            unit_cpu.clear()
        for ts, msgs in scrapes:
            for p in range(w.partitions):
                if p in empty:
                    continue
                batch = [(0, key, value, ts) for q, key, value in msgs if q == p]
                for i in range(len(batch)):
                    batch[i] = (in_offsets[p] + i, *batch[i][1:])
                in_offsets[p] += len(batch)
                in_partial[0] = 0.0
                c0 = cpu()
                out = partial.process_records(p, batch, ts)
                spent = cpu() - c0
                if measured:
                    costs[p].partial += in_partial[0]
                    costs[p].ingest += spent - in_partial[0]
                send(p, out.records, out.headers, measured)
            in_merge[0] = 0.0
            c0 = cpu()
            outputs = merger.advance()
            spent = cpu() - c0
            mc.transitions.extend(alert_ids(outputs))
            if measured:
                mc.merge += in_merge[0]
                mc.engine += spent - in_merge[0]
                mc.alerts += sum(len(o.alerts) for o in outputs)
                mc.recorded += sum(len(o.recorded) for o in outputs)
    assert merger.failures == 0 and merger.bad == 0 and partial.failures == 0, (
        merger.failures, merger.bad, partial.failures)
    mc.per_unit = dict(unit_cpu)
    return costs, mc, shapes


# -- the model -------------------------------------------------------------------------------------------

def max_rate(r0: float, partial: float, merge: float, read: float, processes: int, cores: float,
             partitions: int, busiest_merge: float | None = None) -> float:
    """Samples/s that P processes on `cores` cores sustain, from CPU seconds per event-time second at r0
    (every cost grows with the rate). A process is one thread: the busiest one needs at most one core,
    its share of the partial work (partitions are not split) + the merge work of its units
    (`busiest_merge`; default all of it) + its read of the whole partials topic; and all of them together,
    partial + merge + P x read, share the cores."""
    busiest = partial / min(processes, partitions) + (merge if busiest_merge is None else busiest_merge) + read
    total = partial + merge + processes * read
    return r0 / max(busiest, total / cores)


def report(w: Workload, base: float, single: dict[str, float] | None,
           part: tuple[list[PartitionCost], MergeCost, list[str]] | None, load: tuple[float, float]) -> dict[str, Any]:
    secs = w.event_seconds
    r0 = w.samples / secs
    out: dict[str, Any] = {
        "series": len(w.series), "rules": sum(len(g.rules) for g in w.groups), "units": len(w.loaded.units),
        "partitions": w.partitions, "ticks": len(w.tick_points), "event_seconds": secs,
        "samples_per_s": r0, "cores": CORES, "load_before": load[0], "load_after": load[1],
        "baseline_cpu_per_s": base / secs,
    }
    if single is not None:
        a = (single["ingest"] + single["evaluate"]) / secs
        out["single"] = {
            "cpu_per_s": a, "ingest_cpu_per_s": single["ingest"] / secs,
            "evaluate_cpu_per_s": single["evaluate"] / secs,
            "ratio_to_baseline": a / (base / secs), "max_samples_per_s": r0 / a,
            "alert_messages": single["alert_messages"], "recorded_messages": single["recorded_messages"],
            "alert_transitions": len(single["alerts"])}
    if part is not None:
        costs, mc, shapes = part
        per_part = [(c.ingest + c.partial) / secs for c in costs]
        partial = sum(per_part)
        merge = (mc.read_owned - mc.read_all + mc.merge + mc.engine) / secs  # all units' merge-stage work
        read = mc.read_all / secs  # every process's read of the whole partials topic
        fixed = merge + read
        n_ticks = len(w.tick_points)
        out["partitioned"] = {
            "partial_cpu_per_s": partial, "partial_cpu_per_sample_us": partial / r0 * 1e6,
            "partial_ingest_cpu_per_s": sum(c.ingest for c in costs) / secs,
            "partial_eval_cpu_per_s": sum(c.partial for c in costs) / secs,
            "per_partition_cpu_per_s": per_part,
            "partials_records_per_tick": sum(c.records for c in costs) / n_ticks,
            "partials_bytes_per_tick": sum(c.bytes for c in costs) / n_ticks,
            "merge_decode_ms_per_tick": (mc.read_owned - mc.read_all) / n_ticks * 1000,
            "merge_ms_per_tick": mc.merge / n_ticks * 1000,
            "merge_engine_ms_per_tick": mc.engine / n_ticks * 1000,
            "read_all_ms_per_tick": mc.read_all / n_ticks * 1000,
            "merge_cpu_per_s": merge, "read_all_cpu_per_s": read,
            "ratio_partial_to_baseline": partial / (base / secs), "ratio_merge_to_baseline": fixed / (base / secs),
            "alert_messages": mc.alerts, "recorded_messages": mc.recorded,
            "same_alert_transitions_as_single_store": (sorted(mc.transitions) == sorted(single["alerts"])
                                                       if single is not None else None),
            "alert_transitions": len(mc.transitions),
            "plans": shapes,
        }
        largest = max(mc.per_unit.values(), default=0.0) / secs
        units = len(w.loaded.units)

        def spread(p: int) -> float:  # the busiest process's merge work with the units spread evenly
            return max(largest, merge / min(p, units))

        out["partitioned"]["largest_unit_merge_cpu_per_s"] = largest
        # one machine (this one): the busiest process owning every unit's merge, or the units spread evenly
        out["max_samples_per_s"] = {
            str(p): max_rate(r0, partial, merge, read, p, CORES, w.partitions) for p in (1, 2, 4)}
        out["max_samples_per_s_units_spread"] = {
            str(p): max_rate(r0, partial, merge, read, p, CORES, w.partitions, spread(p)) for p in (1, 2, 4)}
        # N machines of 2 cores, 2 processes each, units spread, samples partitions >= processes
        out["projection_2core_machines"] = {
            str(n): max_rate(r0, partial, merge, read, 2 * n, 2 * n, max(w.partitions, 2 * n), spread(2 * n))
            for n in (1, 2, 4, 8, 16)}
        # however many machines: the largest unit's merge and the read of the partials bound it
        out["projection_limit_samples_per_s"] = r0 / (largest + read) if largest + read else math.inf
    return out


def show(result: dict[str, Any]) -> None:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:,.4f}" if abs(v) < 10 else f"{v:,.0f}"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k}: {fmt(x)}" for k, x in v.items()) + "}"
        if isinstance(v, list):
            return "[" + ", ".join(fmt(x) for x in v) + "]"
        return str(v)

    for key, value in result.items():
        if isinstance(value, dict):
            print(f"{key}:")
            for k, v in value.items():
                print(f"  {k:>34}: {fmt(v)}")
        else:
            print(f"{key:>36}: {fmt(value)}")


def phases(names: str) -> Iterator[str]:
    yield from (n.strip() for n in names.split(",") if n.strip())


def run(n_series: int, n_rules: int, n_ticks: int, warmup: float, history: float, partitions: int,
        semantics: str, only: set[str]) -> dict[str, Any]:
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    w = build(n_series, n_rules, n_ticks, warmup, history, partitions, semantics)
    print(f"workload built in {time.perf_counter() - t0:.0f} s: {w.samples / w.event_seconds:,.0f} samples/s")
    base = baseline(w)
    gc.collect()
    single = single_store(w) if "single" in only else None
    gc.collect()
    part = partitioned(w) if "partitioned" in only else None
    result = report(w, base, single, part, (load0, os.getloadavg()[0]))
    result["wall_seconds"] = time.perf_counter() - t0
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--series", type=int, default=200_000)
    ap.add_argument("--rules", type=int, default=100)
    ap.add_argument("--ticks", type=int, default=4, help="measured rule ticks (30 s of event time each)")
    ap.add_argument("--warmup", type=float, default=60.0, help="seconds of event time through the stages first")
    ap.add_argument("--history", type=float, default=600.0, help="seconds of points appended before the warm-up")
    ap.add_argument("--partitions", type=int, default=DEFAULT_TOPICS["samples"].partitions)
    ap.add_argument("--only", default="single,partitioned", help="phases to run: single, partitioned")
    ap.add_argument("--json", help="write the numbers here too")
    ap.add_argument("--semantics", choices=SEMANTICS, default=DEFAULT_SEMANTICS, help="PromQL semantics")
    args = ap.parse_args()
    result = run(args.series, args.rules, args.ticks, args.warmup, args.history, args.partitions, args.semantics,
                 set(phases(args.only)))
    show(result)
    if args.json:
        Path(args.json).write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))


if __name__ == "__main__":
    main()

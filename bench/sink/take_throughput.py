"""Rows/s of the ClickHouse sink's `_take` (decode + check + buffer) on realistic aggregate JSON.

In-process, no broker: the messages are what the window agent sends (`core.window_output.aggregate_messages`
on windows closed by the real `WindowEngine`), wrapped in aiokafka `ConsumerRecord`s. The baseline,
measured in the same run, is `orjson.loads` of the same messages kept in a list (the floor any check sits
on). Also in the same run: `_take` with the row check patched out (what `_take` cost before it checked
types: it only looked for the required keys) and with `WindowAggregate.model_validate` in its place.

    PYTHONPATH=. python -m bench.sink.take_throughput            # 100k aggregates, best of 5
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError

from watchkeeper.core.sample_columns import SampleColumns
from watchkeeper.core.series_registry import SeriesRegistry
from watchkeeper.core.window_output import aggregate_messages
from watchkeeper.core.windows import WindowEngine
from watchkeeper.plumbing.config import Config
from watchkeeper.schemas import WindowAggregate


def make_messages(n: int, series: int = 2000, seed: int = 7) -> list[bytes]:
    """`n` aggregate messages of `series` series, each window holding ~20 samples (realistic sketches)."""
    rng = np.random.default_rng(seed)
    reg = SeriesRegistry()
    idx = np.array([reg.index_of("http_request_seconds", {"host": f"h{i % 50}", "path": f"/p{i}"},
                                 "counter" if i % 4 == 0 else "gauge") for i in range(series)])
    eng = WindowEngine(reg)
    out: list[bytes] = []
    t = 1_790_000_000.0
    while len(out) < n:
        k = series * 20
        eng.ingest(SampleColumns(rng.choice(idx, k), t + rng.uniform(0, 10, k), rng.lognormal(0, 1, k).round(4),
                                 np.zeros(k, dtype=bool)))
        t += 10
        out.extend(v for _, v in aggregate_messages(eng.flush(), reg))
    return out[:n]


def best_of(repeat: int, fn: Callable[[], None]) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    from watchkeeper.commands.sink import clickhouse_sink_settings
    from watchkeeper.sinks import clickhouse_sink
    from watchkeeper.sinks.clickhouse_sink import ClickHouseSink

    messages = make_messages(args.rows)
    cfg = Config()
    topic = cfg.kafka.topics.aggregates
    records = [ConsumerRecord(topic, 0, i, 0, 0, None, m, None, 0, len(m), ()) for i, m in enumerate(messages)]

    def take_all() -> None:
        sink = ClickHouseSink(clickhouse_sink_settings(cfg), None)  # type: ignore[arg-type]  # `_take` never touches ClickHouse

        async def run() -> None:
            for rec in records:
                await sink._take(rec, None)  # type: ignore[arg-type]  # no bad rows: nothing is produced
        asyncio.run(run())
        assert sink.stats.bad_messages == 0 and len(sink._buffers["aggregates"]) == len(records)

    def pydantic_problem(table: str, obj: Any) -> str | None:
        try:
            WindowAggregate.model_validate(obj)
            return None
        except ValidationError as exc:
            return str(exc)

    def with_check(check: Callable[[str, Any], str | None]) -> Callable[[], None]:
        def run() -> None:
            saved = clickhouse_sink.row_problem
            clickhouse_sink.row_problem = check
            try:
                take_all()
            finally:
                clickhouse_sink.row_problem = saved
        return run

    results = {
        "floor: orjson.loads": best_of(args.repeat, lambda: [orjson.loads(m) for m in messages] and None),
        "sink _take, strict model + column ranges (now)": best_of(args.repeat, take_all),
        "sink _take, no type check (as before: required keys only)": best_of(
            args.repeat, with_check(lambda table, obj: None)),
        "sink _take, lax WindowAggregate.model_validate instead": best_of(args.repeat, with_check(pydantic_problem)),
    }
    floor = results["floor: orjson.loads"]
    size = np.mean([len(m) for m in messages])
    print(f"{args.rows} aggregate messages, mean {size:.0f} bytes, best of {args.repeat}")
    print("| path | rows/s | us/row | x floor time |")
    print("|---|---:|---:|---:|")
    for name, sec in results.items():
        print(f"| {name} | {args.rows / sec:,.0f} | {sec / args.rows * 1e6:.2f} | {sec / floor:.1f} |")


if __name__ == "__main__":
    main()

"""Given known samples on wk.samples, expect the exact windows on wk.aggregates and in ClickHouse; bad and
late input on wk.deadletter with its reason, and the worker going on."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import clickhouse_connect
import orjson
import pytest

from tests.conftest import write_config
from tests.integration.kafka_io import consume_until, produce
from watchkeeper.plumbing.config import Config
from watchkeeper.schemas import DeadLetter, SampleBatch, SeriesBlock, WindowAggregate, decode, encode

T0 = float(int(time.time()) // 60 * 60 - 3600)  # recent, so the samples table's TTL keeps the rows


@pytest.fixture
def worker(wk_config: Config, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    cfg_path = write_config(wk_config, tmp_path / "watchkeeper.yaml")
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "watchkeeper", "worker", "--config", str(cfg_path)],
                            stdout=log, stderr=subprocess.STDOUT)
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def batch(source: str, start: float, n: int, series: int = 2) -> SampleBatch:
    """`series` series, one point per second from `start`: cpu gauge = seconds since T0, requests counter =
    10 x that, so consecutive batches continue the same series."""
    ts = [start + i for i in range(n)]
    x = [t - T0 for t in ts]
    blocks = []
    for s in range(series):
        blocks.append(SeriesBlock(name="cpu", labels={"core": str(s)}, ts=ts, values=x))
        blocks.append(SeriesBlock(name="requests_total", labels={"core": str(s)}, kind="counter", ts=ts,
                                  values=[10.0 * v for v in x]))
    return SampleBatch(source=source, labels={"host": source}, series=blocks)


def test_known_samples_give_exact_windows_and_bad_input_is_dead_lettered(
    wk_config: Config, worker: subprocess.Popen[bytes], ch_dsn: str
) -> None:
    t = wk_config.kafka.topics
    messages = [
        (b"h1", b"{not json"),  # malformed: dead-lettered, worker goes on
        (b"h1", encode(batch("h1", T0, 30))),  # windows [T0, T0+10), [T0+10, T0+20) close; third stays open
        (b"h1", orjson.dumps({"v": 1, "source": "h1", "series": [{"name": "x", "ts": [1], "values": []}]})),
        (b"h1", encode(batch("h1", T0 + 30, 20))),  # watermark T0+44: closes up to T0+40
        (b"h1", encode(batch("h1", T0 + 5.5, 1))),  # late: its window closed long ago
    ]
    asyncio.run(produce(wk_config.kafka.bootstrap, t.samples, messages))

    expected_windows = 4 * 4  # 2 cpu + 2 counter series x windows T0, +10, +20, +30
    aggs = asyncio.run(consume_until(wk_config.kafka.bootstrap, t.aggregates,
                                     lambda r: len(r) >= expected_windows, timeout=90))
    models = [decode(r.value, WindowAggregate) for r in aggs]
    assert len(models) == expected_windows, f"worker log: {worker.args}"
    by_key = {(m.name, m.labels["core"], m.start): m for m in models}
    assert len(by_key) == expected_windows  # each window exactly once
    for core in ("0", "1"):
        for w in range(4):
            cpu = by_key[("cpu", core, T0 + 10 * w)]
            vals = [float(i) for i in range(10 * w, 10 * w + 10)]
            assert (cpu.count, cpu.min, cpu.max, cpu.last) == (10, vals[0], vals[-1], vals[-1])
            assert cpu.sum == pytest.approx(sum(vals), rel=1e-12)
            assert abs(cpu.p50 - vals[4]) <= 0.01 * vals[4] + 1e-9  # rank floor(0.5*9) = 4
            assert cpu.labels == {"host": "h1", "core": core}
            req = by_key[("requests_total", core, T0 + 10 * w)]
            # +10 per second; the first window has no earlier sample for its first point
            assert req.increase == (90.0 if w == 0 else 100.0)
            assert req.kind == "counter"

    dead = asyncio.run(consume_until(wk_config.kafka.bootstrap, t.deadletter, lambda r: len(r) >= 3, timeout=30))
    letters = [decode(r.value, DeadLetter) for r in dead]
    reasons = [d.reason for d in letters]
    assert reasons[0].startswith("not JSON")
    assert "ts has 1 points but values has 0" in reasons[1]
    assert reasons[2].startswith("late: 4 of 4 samples")
    assert letters[0].original_bytes() == b"{not json" and letters[0].offset == 0
    late = SampleBatch.model_validate_json(base64.b64decode(letters[2].original))
    assert late.point_count() == 4

    # The same windows in ClickHouse, through the sink.
    sink_cfg = wk_config.model_copy(deep=True)
    sink_cfg.clickhouse.dsn = ch_dsn
    sink_cfg.clickhouse.flush_seconds = 0.5
    client = clickhouse_connect.get_client(dsn=ch_dsn)
    rows = asyncio.run(_run_sink_until(sink_cfg, client, expected_windows))
    assert rows == expected_windows
    got = client.query(
        "SELECT name, labels['core'], toUnixTimestamp(start), count, sum, max, increase FROM aggregates FINAL "
        "ORDER BY name, labels['core'], start"
    ).result_rows
    want = sorted((m.name, m.labels["core"], int(m.start), m.count, m.sum, m.max, m.increase) for m in models)
    assert [tuple(r) for r in got] == want
    n_samples = client.query("SELECT count() FROM samples FINAL").result_rows[0][0]
    assert n_samples == 4 * 30 + 4 * 20 + 4 * 1  # every good raw point, late ones included


async def _run_sink_until(cfg: Config, client: object, rows: int) -> int:
    from watchkeeper.commands.sink import run_clickhouse_sink

    stop = asyncio.Event()
    task = asyncio.create_task(run_clickhouse_sink(cfg, stop))
    deadline = time.monotonic() + 60
    count = 0
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        try:
            count = client.query("SELECT count() FROM aggregates FINAL").result_rows[0][0]  # type: ignore[attr-defined]
        except Exception:
            continue
        if count >= rows:
            break
    stop.set()
    await task
    return count

"""Given a real Prometheus (Debian `prometheus`) scraping itself and remote-writing into Watchkeeper's push API,
expect the same series in ClickHouse, through Kafka and the sink, with exactly the values and timestamps
Prometheus reports for them through its own query API."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import clickhouse_connect
import pytest
from aiohttp import web

from watchkeeper.plumbing.broker import free_port
from watchkeeper.plumbing.config import Config
from watchkeeper.producers.push_api import create_push_app
from watchkeeper.producers.sender import BatchSender

TOKEN = "remote-write-token"
SERIES = ["up", "scrape_samples_scraped", "prometheus_tsdb_head_series", "prometheus_build_info",
          "prometheus_http_requests_total"]
pytestmark = pytest.mark.skipif(shutil.which("prometheus") is None,
                                reason="the prometheus server is not installed (apt-get install prometheus)")


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.load(resp)


def _start_prometheus(tmp: Path, push_port: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    (tmp / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s}\n"
        f"scrape_configs: [{{job_name: self, static_configs: [{{targets: ['127.0.0.1:{port}']}}]}}]\n"
        f"remote_write: [{{url: 'http://127.0.0.1:{push_port}/api/v1/write', authorization: {{credentials: {TOKEN}}},"
        " queue_config: {batch_send_deadline: 1s}}]\n")
    log = open(tmp / "prometheus.log", "wb")  # noqa: SIM115 (the child owns it)
    proc = subprocess.Popen(["prometheus", f"--config.file={tmp / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=log, stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{port}"


def _prometheus_samples(base: str, name: str, at: float) -> dict[frozenset[tuple[str, str]], list[tuple[int, float]]]:
    """Every raw sample of `name` in the 5 minutes before `at`, per label set, as Prometheus reports them."""
    q = urllib.parse.urlencode({"query": f"{name}[5m]", "time": f"{at:.3f}"})
    out: dict[frozenset[tuple[str, str]], list[tuple[int, float]]] = {}
    for series in _get_json(f"{base}/api/v1/query?{q}")["data"]["result"]:
        labels = frozenset((k, v) for k, v in series["metric"].items() if k != "__name__")
        out[labels] = [(round(float(t) * 1000), float(v)) for t, v in series["values"]]
    return out


def _clickhouse_samples(client: Any, name: str) -> dict[frozenset[tuple[str, str]], list[tuple[int, float]]]:
    rows = client.query("SELECT labels, toUnixTimestamp64Milli(ts), value FROM samples FINAL WHERE name = {n:String} "
                        "ORDER BY series_id, ts", parameters={"n": name}).result_rows
    out: dict[frozenset[tuple[str, str]], list[tuple[int, float]]] = {}
    for labels, ts, value in rows:
        out.setdefault(frozenset(labels.items()), []).append((int(ts), float(value)))
    return out


def test_prometheus_remote_write_lands_in_clickhouse_with_prometheus_values(wk_config: Config, ch_dsn: str,
                                                                            tmp_path: Path) -> None:
    cfg = wk_config
    cfg.clickhouse.dsn = ch_dsn
    cfg.clickhouse.flush_seconds = 0.5
    push_port = free_port()
    client = clickhouse_connect.get_client(dsn=ch_dsn)

    async def scenario() -> None:
        from watchkeeper.commands.sink import run_clickhouse_sink

        sender = BatchSender(cfg.kafka.bootstrap, cfg.kafka.topics.samples, tmp_path / "spool", self_metrics_seconds=0)
        await sender.start()
        runner = web.AppRunner(create_push_app(sender, token=TOKEN))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", push_port).start()
        stop = asyncio.Event()
        sink = asyncio.create_task(run_clickhouse_sink(cfg, stop))
        prom, base = _start_prometheus(tmp_path, push_port)
        try:
            deadline = time.monotonic() + 90
            seen = 0
            while time.monotonic() < deadline:  # ten scrapes of itself, written through to ClickHouse
                await asyncio.sleep(1.0)
                try:
                    seen = client.query("SELECT count() FROM samples WHERE name = 'up'").result_rows[0][0]
                except Exception:  # the table appears with the sink's first flush
                    continue
                if seen >= 10:
                    break
            log = (tmp_path / "prometheus.log").read_text()[-2000:]
            assert seen >= 10, f"only {seen} `up` samples after 90 s: {log}"
            at = time.time() - 1.0
            await asyncio.sleep(4.0)  # everything Prometheus had at `at` is written and flushed by now
            for name in SERIES:
                expected = _prometheus_samples(base, name, at)
                got = _clickhouse_samples(client, name)
                assert expected, name
                assert set(expected) <= set(got), f"{name}: label sets {set(expected) - set(got)} missing"
                for labels, points in expected.items():
                    have = {ts: v for ts, v in got[labels] if ts <= at * 1000}
                    assert have == dict(points), f"{name}{dict(labels)}: {sorted(have.items())} != {points}"
            assert stats_ok(sender)
        finally:
            prom.terminate()  # it flushes its remote-write queue to us on the way out: keep serving meanwhile
            await asyncio.to_thread(prom.wait, 20)
            stop.set()
            await sink
            await runner.cleanup()
            await sender.stop()

    asyncio.run(scenario())


def stats_ok(sender: BatchSender) -> bool:
    stats = sender.stats()
    return stats["dropped_points"] == {} and stats["spooled_points"] > 0

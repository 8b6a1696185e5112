"""The scrape producer against real peers: a real Prometheus server (Debian package), whose own scrape of
itself is the reference for names and labels, and a prometheus-client app with known values."""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary
from prometheus_client.exposition import CONTENT_TYPE_LATEST, choose_encoder, generate_latest

from watchkeeper.plumbing.broker import free_port
from watchkeeper.plumbing.config import Config, ScrapeTargetConfig
from watchkeeper.plumbing.self_metrics import INGEST_DISCARDED
from watchkeeper.producers.scrape import run_scrape_producer, scrape_once
from watchkeeper.schemas.limits import IngestLimits
from watchkeeper.schemas.samples import SampleBatch, SeriesBlock

NOW = 1_700_000_000.0
SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.load(resp)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus scraping itself every second (job `self`), so its TSDB shows what it stores."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("the prometheus server is not installed (apt-get install prometheus)")
    tmp = tmp_path_factory.mktemp("prometheus")
    port = free_port()
    (tmp / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s}\n"
        f"scrape_configs: [{{job_name: self, static_configs: [{{targets: ['127.0.0.1:{port}']}}]}}]\n")
    log = open(tmp / "prometheus.log", "wb")  # noqa: SIM115 (the child owns it)
    proc = subprocess.Popen([binary, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/-/ready", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Prometheus did not become ready: {(tmp / 'prometheus.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _identity(name: str, labels: dict[str, str]) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


def _by_name(blocks: list[SeriesBlock]) -> dict[str, list[SeriesBlock]]:
    out: dict[str, list[SeriesBlock]] = {}
    for block in blocks:
        out.setdefault(block.name, []).append(block)
    return out


def _value(blocks: list[SeriesBlock], name: str, **labels: str) -> float:
    [block] = [b for b in blocks if b.name == name and all(b.labels.get(k) == v for k, v in labels.items())]
    [value] = block.values
    return value


async def test_scraping_prometheus_matches_what_prometheus_stores_of_itself(prometheus: str) -> None:
    target = ScrapeTargetConfig(url=f"{prometheus}/metrics", job="self")
    deadline = time.monotonic() + 20
    while not _get_json(f"{prometheus}/api/v1/query?query=up%7Bjob%3D%22self%22%7D")["data"]["result"]:
        assert time.monotonic() < deadline, "Prometheus never scraped itself"
        await asyncio.sleep(0.3)
    latest = _get_json(f"{prometheus}/api/v1/query?query=%7Bjob%3D%22self%22%7D")["data"]["result"]
    # NaN and Inf cannot go on our JSON wire (the parser skips them), so only finite series are compared.
    stored = {_identity(s["metric"].pop("__name__"), s["metric"]) for s in latest
              if math.isfinite(float(s["value"][1]))}
    build_info = _get_json(f"{prometheus}/api/v1/series?match[]=prometheus_build_info")["data"]

    async with aiohttp.ClientSession() as session:
        blocks = await scrape_once(target, session, NOW)  # after Prometheus' scrape: families only grow
    series = _by_name(blocks)

    assert _value(blocks, "up") == 1.0
    assert _value(blocks, "scrape_samples_scraped") > 100
    # Prometheus' extra per-scrape series (which we do not make) and creation times (which we drop) aside,
    # every series Prometheus stored from its own /metrics, name and labels alike, is one we produce.
    ours_not_made = {"scrape_samples_post_metric_relabeling", "scrape_series_added"}
    missing = {s for s in stored - {_identity(b.name, b.labels) for b in blocks}
               if s[0] not in ours_not_made and not s[0].endswith("_created")}
    assert len(stored) > 100
    assert not missing
    [stored_info] = build_info
    [our_info] = series["prometheus_build_info"]
    assert our_info.labels == {k: v for k, v in stored_info.items() if k != "__name__"}
    assert our_info.labels["instance"] == prometheus.removeprefix("http://")

    buckets = [b for name, blocks_ in series.items() if name.endswith("_bucket") for b in blocks_]
    assert buckets and all("le" in b.labels and b.kind == "counter" for b in buckets)
    assert any(b.labels["le"] == "+Inf" for b in buckets)
    counters = {b.name for b in blocks if b.kind == "counter" and not b.name.endswith(("_bucket", "_sum", "_count"))}
    assert "prometheus_http_requests_total" in counters
    assert all(name.endswith("_total") for name in counters if name.startswith("prometheus_"))


def _client_registry() -> CollectorRegistry:
    """A prometheus-client app's metrics with values known in advance."""
    registry = CollectorRegistry()
    Counter("jobs", "Jobs done.", ["queue"], registry=registry).labels(queue="mail").inc(3)
    Gauge("temperature_celsius", "Temperature.", registry=registry).set(21.5)
    latency = Histogram("latency_seconds", "Latency.", buckets=(0.1, 0.5, 1.0), registry=registry)
    for seconds in (0.05, 0.3, 0.3, 2.0):
        latency.observe(seconds)
    rpc = Summary("rpc_seconds", "RPC time.", registry=registry)
    rpc.observe(1.0)
    rpc.observe(2.5)
    return registry


@pytest.fixture
async def client_app() -> AsyncIterator[str]:
    """`/negotiated` serves OpenMetrics to whoever asks for it, as prometheus-client's own servers do;
    `/text` only the 0.0.4 text format; `/broken` a 500; `/garbage` a 200 that does not parse."""
    registry = _client_registry()

    async def negotiated(request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encoder(registry), headers={"Content-Type": content_type})

    async def text(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def broken(_: web.Request) -> web.Response:
        return web.Response(status=500, text="jobs_total 1\n")

    async def garbage(_: web.Request) -> web.Response:
        return web.Response(text='jobs_total{queue="mail} 3\n', content_type="text/plain")

    app = web.Application()
    app.router.add_get("/negotiated", negotiated)
    app.router.add_get("/text", text)
    app.router.add_get("/broken", broken)
    app.router.add_get("/garbage", garbage)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("path", ["/negotiated", "/text"])
async def test_prometheus_client_app_series_and_values(client_app: str, path: str) -> None:
    """OpenMetrics and the text format give the same series: the format is the app's choice, not ours."""
    target = ScrapeTargetConfig(url=client_app + path, job="app", labels={"env": "test"})
    async with aiohttp.ClientSession() as session:
        blocks = await scrape_once(target, session, NOW)

    target_labels = {"job": "app", "instance": client_app.removeprefix("http://"), "env": "test"}
    assert all(b.labels.items() >= target_labels.items() and b.ts == [NOW] for b in blocks)
    assert set(_by_name(blocks)) == SYNTHETIC | {
        "jobs_total", "temperature_celsius", "latency_seconds_bucket", "latency_seconds_sum",
        "latency_seconds_count", "rpc_seconds_sum", "rpc_seconds_count"}
    kinds = {b.name: b.kind for b in blocks}
    assert kinds["jobs_total"] == kinds["latency_seconds_bucket"] == kinds["rpc_seconds_count"] == "counter"
    assert kinds["temperature_celsius"] == kinds["up"] == "gauge"

    assert _value(blocks, "up") == 1.0
    assert _value(blocks, "jobs_total", queue="mail") == 3.0
    assert _value(blocks, "temperature_celsius") == 21.5
    assert {b.labels["le"]: b.values[0] for b in blocks if b.name == "latency_seconds_bucket"} == {
        "0.1": 1.0, "0.5": 3.0, "1.0": 3.0, "+Inf": 4.0}
    assert _value(blocks, "latency_seconds_count") == 4.0
    assert _value(blocks, "latency_seconds_sum") == pytest.approx(2.65)
    assert _value(blocks, "rpc_seconds_count") == 2.0
    assert _value(blocks, "rpc_seconds_sum") == 3.5
    # Every exposed sample, the three `_created` ones included, as Prometheus counts them.
    assert _value(blocks, "scrape_samples_scraped") == 13.0
    assert 0.0 < _value(blocks, "scrape_duration_seconds") < 5.0


@pytest.mark.parametrize("where", ["closed-port", "/broken", "/garbage"])
async def test_a_failed_scrape_is_up_0_and_no_samples(client_app: str, where: str) -> None:
    url = f"http://127.0.0.1:{free_port()}/metrics" if where == "closed-port" else client_app + where
    target = ScrapeTargetConfig(url=url, timeout=2.0)
    async with aiohttp.ClientSession() as session:
        blocks = await scrape_once(target, session, NOW)
    assert {b.name: b.values for b in blocks if b.name != "scrape_duration_seconds"} == {
        "up": [0.0], "scrape_samples_scraped": [0.0]}
    assert {b.name for b in blocks} == SYNTHETIC


async def test_a_slow_target_times_out_as_up_0() -> None:
    release = asyncio.Event()

    async def slow(_: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="never 1\n")

    app = web.Application()
    app.router.add_get("/metrics", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession() as session:
            blocks = await scrape_once(ScrapeTargetConfig(url=f"http://127.0.0.1:{port}/metrics", timeout=0.3),
                                       session, NOW)
    finally:
        release.set()
        await runner.cleanup()
    assert _value(blocks, "up") == 0.0
    assert 0.25 < _value(blocks, "scrape_duration_seconds") < 2.0


class _Collector:
    def __init__(self) -> None:
        self.batches: list[SampleBatch] = []

    async def send(self, batch: SampleBatch) -> None:
        self.batches.append(batch)


async def test_producer_sends_a_batch_per_interval_until_stopped(client_app: str) -> None:
    cfg = Config()
    cfg.producers.scrape.targets = [ScrapeTargetConfig(url=client_app + "/text", job="app", interval=0.2)]
    sink, stop = _Collector(), asyncio.Event()
    task = asyncio.create_task(run_scrape_producer(cfg.producers.scrape, cfg.ingest_limits(), sink, stop=stop))
    deadline = time.monotonic() + 5
    while len(sink.batches) < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, timeout=5)

    assert len(sink.batches) >= 2
    for batch in sink.batches:
        assert batch.source == "scrape"
        assert _value(batch.series, "up") == 1.0
        assert _value(batch.series, "jobs_total", queue="mail") == 3.0
    first, second = (b.series[0].ts[0] for b in sink.batches[:2])
    assert second > first  # the first scrape runs at once, the next on an interval boundary


async def test_series_over_a_limit_are_left_out_and_counted_and_too_many_fail_the_scrape() -> None:
    future_ms = int((NOW + 3600) * 1000)
    text = (f'ok{{a="1"}} 1\nok{{a="2"}} 2 {future_ms}\nwide{{big="{"x" * 3000}"}} 3\n'
            + "".join(f'many{{i="{i}"}} 1\n' for i in range(20)))

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(text=text)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    future_before = INGEST_DISCARDED.labels("scrape", "future")._value.get()
    try:
        target = ScrapeTargetConfig(url=f"http://127.0.0.1:{port}/metrics")
        async with aiohttp.ClientSession() as session:
            blocks = await scrape_once(target, session, NOW, IngestLimits())
            assert _value(blocks, "up") == 1.0
            assert [b.labels["a"] for b in blocks if b.name == "ok"] == ["1"]
            assert not [b for b in blocks if b.name == "wide"] and len([b for b in blocks if b.name == "many"]) == 20
            assert INGEST_DISCARDED.labels("scrape", "future")._value.get() == future_before + 1
            # More series than a request may hold: the whole scrape fails, as Prometheus' sample_limit does.
            blocks = await scrape_once(target, session, NOW, IngestLimits(max_series_per_request=10))
            assert {b.name: b.values for b in blocks if b.name != "scrape_duration_seconds"} == {
                "up": [0.0], "scrape_samples_scraped": [0.0]}
    finally:
        await runner.cleanup()

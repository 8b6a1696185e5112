"""Given the push API in front of a spool draining into the real broker, expect accepted JSON and text
pushes on wk.samples exactly as sent, a bearer token enforced, every bad body answered with a 4xx that
names the problem and nothing of it spooled, and (fuzzed with hypothesis) never a 5xx or a malformed
message on the topic."""

from __future__ import annotations

import asyncio
import math
import struct
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cramjam
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.kafka_io import consume_until
from watchkeeper.plumbing.broker import free_port
from watchkeeper.plumbing.self_metrics import INGEST_DISCARDED, INGEST_REJECTED
from watchkeeper.plumbing.topics import ensure_topics
from watchkeeper.producers.push_api import create_push_app
from watchkeeper.producers.remote_write import encode_write_request
from watchkeeper.producers.sender import BatchSender
from watchkeeper.schemas.codec import decode_sample_message
from watchkeeper.schemas.limits import IngestLimits
from watchkeeper.schemas.samples import SampleBatch

TOKEN = "s3cret"


@dataclass
class Server:
    url: str
    sender: BatchSender
    topic: str
    bootstrap: str


@pytest.fixture(scope="module")
def server(broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The push API on its own event loop in a thread, so tests (and hypothesis) talk to it over real HTTP."""
    topic = f"push{time.time_ns()}.samples"
    port = free_port()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, object] = {}

    async def start() -> None:
        await ensure_topics(broker, {topic: 8})
        sender = BatchSender(broker, topic, tmp_path_factory.mktemp("spool"), self_metrics_seconds=0)
        await sender.start()
        runner = web.AppRunner(create_push_app(sender, token=TOKEN, max_body_bytes=1 << 20))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        holder.update(sender=sender, runner=runner)
        ready.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(start()), loop.run_forever()), daemon=True)
    thread.start()
    assert ready.wait(30)
    sender = holder["sender"]
    assert isinstance(sender, BatchSender)
    yield Server(f"http://127.0.0.1:{port}", sender, topic, broker)

    async def stop() -> None:
        await holder["runner"].cleanup()  # type: ignore[attr-defined]
        await sender.stop()

    asyncio.run_coroutine_threadsafe(stop(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def post(url: str, body: bytes, *, token: str | None = TOKEN, content_type: str = "application/json",
         method: str = "POST") -> tuple[int, str]:
    headers = {"Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def on_topic(server: Server, at_least: int) -> list[bytes]:
    recs = asyncio.run(consume_until(server.bootstrap, server.topic, lambda r: len(r) >= at_least, timeout=30))
    return [r.value for r in recs]


def test_json_sample_batch_and_list_arrive_as_sent(server: Server) -> None:
    before = server.sender.spool.stats.spooled_batches
    sample = {"name": "queue_depth", "labels": {"queue": "emails"}, "ts": 1_790_000_000.5, "value": 17}
    batch = {"source": "billing", "labels": {"env": "prod"},
             "series": [{"name": "jobs_done_total", "kind": "counter", "ts": [1_790_000_000, 1_790_000_010],
                         "values": [3, 5]}]}
    assert post(f"{server.url}/api/v1/samples", orjson.dumps(sample)) == (202, '{"accepted_samples": 1, "batches": 1}')
    status, text = post(f"{server.url}/api/v1/samples", orjson.dumps(batch))
    assert status == 202 and orjson.loads(text)["accepted_samples"] == 2
    status, text = post(f"{server.url}/api/v1/samples", orjson.dumps([sample, batch]))
    assert status == 202 and orjson.loads(text) == {"accepted_samples": 3, "batches": 2}
    assert server.sender.spool.stats.spooled_batches == before + 4
    decoded = [decode_sample_message(v) for v in on_topic(server, before + 4)]  # partition order, not send order
    by_name: dict[str, list[SampleBatch]] = {}
    for b in decoded:
        by_name.setdefault(b.series[0].name, []).append(b)
    first = by_name["queue_depth"][0]
    assert first.source == "push" and first.series[0].labels == {"queue": "emails"} and first.series[0].values == [17.0]
    second = by_name["jobs_done_total"][0]
    assert second.source == "billing" and second.labels == {"env": "prod"}
    assert second.series[0].kind == "counter" and second.series[0].ts == [1_790_000_000, 1_790_000_010]


@pytest.mark.parametrize(("body", "message"), [
    (b"{not json", "body is not JSON"),
    (b'{"name": "x", "ts": 1, "value": "high"}', "value"),
    (b'{"name": "bad name", "ts": 1, "value": 1}', "name"),
    (b'{"name": "x", "ts": -5, "value": 1}', "ts must be a finite"),
    (b'{"source": "s", "series": [{"name": "x", "ts": [1, 2], "values": [1]}]}', "ts has 2 points but values has 1"),
    (b'[{"name": "ok", "ts": 1, "value": 1}, {"name": "x", "labels": {"__bad": "1"}, "ts": 1, "value": 1}]',
     "not a valid Prometheus label name"),
    (b'{"name": "x", "ts": 1, "value": 1, "extra": true}', "extra"),
])
def test_bad_bodies_get_a_4xx_that_says_why_and_nothing_is_spooled(server: Server, body: bytes,
                                                                     message: str) -> None:
    before = server.sender.spool.stats.spooled_batches
    status, text = post(f"{server.url}/api/v1/samples", body)
    assert status == 400 and message in text, text
    assert server.sender.spool.stats.spooled_batches == before, "a rejected request writes nothing, not even part"


def test_bearer_token(server: Server) -> None:
    body = orjson.dumps({"name": "x", "ts": 1, "value": 1})
    assert post(f"{server.url}/api/v1/samples", body, token=None)[0] == 401
    assert post(f"{server.url}/api/v1/samples", body, token="wrong")[0] == 401
    assert post(f"{server.url}/api/v1/samples", body)[0] == 202
    assert post(f"{server.url}/-/healthy", b"", token=None, method="GET")[0] == 200


def test_body_over_the_limit_is_413(server: Server) -> None:
    status, _ = post(f"{server.url}/api/v1/samples", b"[" + b" " * (2 << 20) + b"]")
    assert status == 413


def test_pushgateway_text_with_grouping_labels(server: Server) -> None:
    before = server.sender.spool.stats.spooled_batches
    text = (b"# TYPE backup_last_success_timestamp_seconds gauge\n"
            b"backup_last_success_timestamp_seconds 1790000000\n"
            b"# TYPE backup_files counter\nbackup_files_total{kind=\"full\"} 42\n")
    status, _ = post(f"{server.url}/metrics/job/nightly-backup/instance/db-1", text, content_type="text/plain",
                     method="PUT")
    assert status == 200
    pushed = [decode_sample_message(v) for v in on_topic(server, before + 1)]
    batch = next(b for b in pushed if b.source == "push/nightly-backup")
    by_name = {s.name: s for s in batch.series}
    assert by_name["backup_last_success_timestamp_seconds"].values == [1_790_000_000.0]
    assert by_name["backup_files_total"].kind == "counter" and by_name["backup_files_total"].values == [42.0]
    assert by_name["backup_files_total"].labels == {"kind": "full", "job": "nightly-backup", "instance": "db-1"}
    status, text_ = post(f"{server.url}/metrics/job/x", b"this is { not exposition\n", content_type="text/plain")
    assert status == 400 and "invalid text exposition" in text_


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers(-2**63, 2**63 - 1) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
sample_like = st.fixed_dictionaries(
    {"name": st.sampled_from(["ok_metric", "bad name", "", "x:y"]),
     "ts": st.one_of(st.floats(allow_nan=False), st.integers(-2**63, 2**63 - 1)),
     "value": st.one_of(st.floats(allow_nan=False), st.text(max_size=3), st.none())},
    optional={"labels": st.dictionaries(st.sampled_from(["a", "__x", "0b", "le"]), st.text(max_size=5)),
              "kind": st.sampled_from(["gauge", "counter", "histogram"]), "v": st.integers(0, 2)},
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(st.binary(max_size=200), json_values.map(orjson.dumps), sample_like.map(orjson.dumps),
                      st.lists(sample_like, max_size=3).map(orjson.dumps)))
def test_fuzzed_bodies_never_crash_the_server(server: Server, body: bytes) -> None:
    before = server.sender.spool.stats.spooled_batches
    status, text = post(f"{server.url}/api/v1/samples", body)
    assert status in (202, 400), (status, text)
    if status == 400:
        assert server.sender.spool.stats.spooled_batches == before


def test_nothing_malformed_reaches_kafka(server: Server) -> None:
    """Runs after the fuzzing: every message the API let through decodes as a valid SampleBatch."""
    spooled = server.sender.spool.stats.spooled_batches
    deadline = time.monotonic() + 30
    while server.sender.spool.pending() and time.monotonic() < deadline:
        time.sleep(0.1)
    values = on_topic(server, spooled)
    assert len(values) == spooled
    for value in values:
        batch = decode_sample_message(value)
        assert all(len(s.ts) == len(s.values) for s in batch.series)



async def test_a_list_with_one_batch_too_large_for_the_spool_writes_none_of_it(tmp_path: Path) -> None:
    sender = BatchSender("127.0.0.1:1", "unused", tmp_path / "spool", max_spool_bytes=5_000, self_metrics_seconds=0)
    small = {"name": "ok_metric", "ts": 1, "value": 1}
    large = {"source": "s", "series": [{"name": "big", "ts": list(range(500)), "values": list(range(500))}]}
    async with TestClient(TestServer(create_push_app(sender))) as client:
        resp = await client.post("/api/v1/samples", data=orjson.dumps([small, large]))
        assert resp.status == 413 and "batch 1 (5883 bytes) is larger than the whole spool" in await resp.text()
    assert sender.spool.stats.spooled_batches == 0 and sender.spool.pending() == 0
    sender.spool.close()


# Bounded input (schemas.limits). The clock is fixed, so "a year ahead" is exact; nothing here reaches Kafka,
# so the sender points at a port nothing listens on and its spool is checked directly.
NOW = 1_800_000_000.0


def rejected(endpoint: str, reason: str) -> float:
    return INGEST_REJECTED.labels(endpoint, reason)._value.get()


@pytest.fixture
async def limited(tmp_path: Path) -> AsyncIterator[tuple[TestClient[web.Request, web.Application], BatchSender]]:
    sender = BatchSender("127.0.0.1:1", "unused", tmp_path / "spool", self_metrics_seconds=0,
                         max_message_bytes=64 * 1024)
    limits = IngestLimits(max_points_per_request=500_000)
    async with TestClient(TestServer(create_push_app(sender, limits=limits, clock=lambda: NOW))) as client:
        yield client, sender
    sender.spool.close()


def one(ts: float = NOW, value: float = 1.0, labels: dict[str, str] | None = None, name: str = "m") -> dict[str, Any]:
    return {"name": name, "ts": ts, "value": value, "labels": labels or {}}


@pytest.mark.parametrize(("body", "reason", "message"), [
    (one(ts=NOW + 365 * 86400), "future", "ahead of this server's clock, more than windows.max_future=600 s"),
    (one(ts=NOW + 601), "future", "ts=1800000601.0 is 601 s ahead"),
    (one(ts=1e300), "bad_timestamp", "between 0 and 9223372036 (year 2262)"),
    ({"source": "s", "series": [{"name": "m", "ts": [NOW, 1e300], "values": [1, 2]}]}, "bad_timestamp",
     "series 0 (m): point 1: ts=1e+300"),
    (one(labels={"big": "x" * 2**20}), "label_value_too_long", "label big's value is 1048576 bytes long"),
    (one(labels={f"l{i}": "v" for i in range(2000)}), "too_many_labels", "2001 label names"),
    (one(labels={"n" * 1025: "v"}), "label_name_too_long", "max_label_name_length=1024"),
    (one(name="m" * 3000), "label_value_too_long", "metric name is 3000 bytes long"),
    ([one(), {"source": "s" * 70_000, "series": [{"name": "m", "ts": [NOW], "values": [1]}]}], "source_too_long",
     "batch 1 source is 70000 bytes long, more than max_source_length=256"),
    ({"source": "s", "series": [{"name": "m", "labels": {"i": str(i)}, "ts": [NOW], "values": [1]}
                                for i in range(10_001)]}, "too_many_series", "10001 series in one request"),
    ({"source": "s", "series": [{"name": "m", "ts": [NOW] * 500_001, "values": [1] * 500_001}]}, "too_many_points",
     "500001 points in one request"),
    (one(labels={"é‹img…>": "v"}), "invalid", "not a valid Prometheus label name"),
    ([[]] * 100_000, "too_many_series", "the body has 100001 JSON arrays and objects"),  # refused before parsing
])
async def test_requests_over_a_limit_get_a_400_naming_it_and_nothing_is_spooled(
        limited: tuple[TestClient[web.Request, web.Application], BatchSender], body: Any, reason: str,
        message: str) -> None:
    client, sender = limited
    before = rejected("samples", reason)
    resp = await client.post("/api/v1/samples", data=orjson.dumps(body))
    text = await resp.text()
    assert resp.status == 400 and message in text and f"(reason: {reason})" in text, text
    assert sender.spool.stats.spooled_batches == 0, "all or nothing: not even the valid first batch"
    assert rejected("samples", reason) == before + 1


async def test_limits_at_their_bound_are_accepted(
        limited: tuple[TestClient[web.Request, web.Application], BatchSender]) -> None:
    client, sender = limited
    body = [one(ts=NOW + 600, labels={"v": "é" * 1024, **{f"l{i}": "v" for i in range(28)}}, name="m" * 2048),
            {"source": "s" * 256, "series": [{"name": "m", "ts": [0.0], "values": [1]}]}]
    resp = await client.post("/api/v1/samples", data=orjson.dumps(body))
    assert resp.status == 202, await resp.text()
    assert sender.spool.stats.spooled_points == 2


async def test_a_large_push_is_split_into_messages_that_fit(
        limited: tuple[TestClient[web.Request, web.Application], BatchSender]) -> None:
    """Like the issue's 12.6 MiB push of 450 k points (this one 10.7 MiB): taken (under a raised points
    limit) and spooled as records no larger than the producer's max_message_bytes, every point accounted for."""
    client, sender = limited
    series = [{"name": "bulk", "labels": {"s": str(s)}, "ts": [NOW - k * 0.001 for k in range(4500)],
               "values": [k * 0.513 for k in range(4500)]} for s in range(100)]
    body = orjson.dumps({"source": "bulk", "series": series})
    assert len(body) > 10 * 2**20
    resp = await client.post("/api/v1/samples", data=body)
    assert resp.status == 202 and (await resp.json())["accepted_samples"] == 450_000
    records = sender.spool.read(max_records=10_000, max_bytes=2**40)
    assert len(records) > 10 * 2**20 // (64 * 1024)
    assert all(len(r.key) + len(r.value) <= 64 * 1024 for r in records)
    points: dict[str, list[float]] = {}
    for record in records:
        for block in decode_sample_message(record.value).series:
            points.setdefault(block.labels["s"], []).extend(block.values)
    assert points == {str(s): [k * 0.513 for k in range(4500)] for s in range(100)}


@pytest.mark.parametrize(("path", "message"), [
    ("/metrics/job@base64/YQ", None),  # "a", padding left out as Pushgateway allows
    ("/metrics/job/x/instance@base64/aG9zdC0x", None),  # "host-1"
    ("/metrics/job/x/instance@base64/a", "is not URL-safe base64 of UTF-8 text"),  # bad padding
    ("/metrics/job/x/instance@base64/_-8", "is not URL-safe base64 of UTF-8 text"),  # \xff\xef: not UTF-8
    ("/metrics/job@base64/!!!", "is not URL-safe base64 of UTF-8 text"),
    ("/metrics/job/x/é/1", "is not a valid label name"),
    ("/metrics/job/x/instance/" + "v" * 3000, "label instance's value is 3000 bytes long"),
    ("/metrics/job/" + "j" * 300, "the job name makes the source push/<job>"),
])
async def test_pushgateway_paths(limited: tuple[TestClient[web.Request, web.Application], BatchSender], path: str,
                                 message: str | None) -> None:
    client, sender = limited
    resp = await client.put(path, data=b"up 1\n")
    text = await resp.text()
    if message is None:
        assert resp.status == 200, text
        assert sender.spool.stats.spooled_points == 1
    else:
        assert resp.status == 400 and message in text, text
        assert sender.spool.stats.spooled_batches == 0


async def test_text_push_checks_timestamps_and_counts_skipped_non_finite_values(
        limited: tuple[TestClient[web.Request, web.Application], BatchSender]) -> None:
    client, _ = limited
    future_ms = int((NOW + 3600) * 1000)
    resp = await client.post("/metrics/job/x", data=f"up 1\nlate_one 2 {future_ms}\n".encode())
    assert resp.status == 400 and "(reason: future)" in await resp.text()
    resp = await client.post("/metrics/job/x", data=b"m 1\n" * 1_500_002)  # refused before parsing
    assert resp.status == 400 and "the exposition has 1500002 lines" in await resp.text()
    before = INGEST_DISCARDED.labels("pushgateway", "bad_value")._value.get()
    resp = await client.post("/metrics/job/x", data=b"up 1\nq{quantile=\"0.5\"} NaN\n")
    assert resp.status == 200 and await resp.json() == {"accepted_samples": 1, "skipped_samples": 1}
    assert INGEST_DISCARDED.labels("pushgateway", "bad_value")._value.get() == before + 1


async def test_remote_write_keeps_the_good_samples_and_answers_400_naming_the_refused(
        limited: tuple[TestClient[web.Request, web.Application], BatchSender]) -> None:
    client, sender = limited
    stale = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]
    body = encode_write_request([
        ({"__name__": "up", "job": "a"}, [(int(NOW * 1000), 1.0), (int(NOW * 1000) + 1, stale)]),
        ({"__name__": "up", "job": "b"}, [(2**63 - 1, 1.0)]),
        ({"__name__": "up", "job": "c"}, [(int(NOW * 1000), math.inf)]),
    ])
    resp = await client.post("/api/v1/write", data=body)
    text = await resp.text()
    assert resp.status == 400, text
    assert text.startswith("2 samples refused (1 bad_timestamp, 1 bad_value); 1 accepted. First: series 1")
    assert sender.spool.stats.spooled_points == 1
    resp = await client.post("/api/v1/write", data=encode_write_request([({"__name__": "up"}, [(0, stale)])]))
    assert resp.status == 204, "a staleness marker alone is dropped quietly (counted)"


async def test_remote_write_snappy_bomb_is_413(
        limited: tuple[TestClient[web.Request, web.Application], BatchSender]) -> None:
    client, _ = limited
    bomb = bytes(cramjam.snappy.compress_raw(b"\0" * (33 * 2**20)))
    resp = await client.post("/api/v1/write", data=bomb)
    assert resp.status == 413 and "(reason: decompressed_too_large)" in await resp.text()


async def test_own_metrics_count_refusals(
        limited: tuple[TestClient[web.Request, web.Application], BatchSender]) -> None:
    client, _ = limited
    await client.post("/api/v1/samples", data=orjson.dumps(one(ts=NOW + 10_000)))
    resp = await client.get("/metrics")
    text = await resp.text()
    assert resp.status == 200
    assert 'watchkeeper_ingest_rejected_total{endpoint="samples",reason="future"}' in text

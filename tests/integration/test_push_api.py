"""Given the push API in front of a spool draining into the real broker, expect accepted JSON and text
pushes on wk.samples exactly as sent, a bearer token enforced, every bad body answered with a 4xx that
names the problem and nothing of it spooled, and (fuzzed with hypothesis) never a 5xx or a malformed
message on the topic."""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producers.push_api import create_push_app
from producers.sender import BatchSender
from schemas.codec import decode_sample_message
from schemas.samples import SampleBatch
from tests.integration.kafka_io import consume_until
from watchkeeper.broker import free_port
from watchkeeper.topics import ensure_topics

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

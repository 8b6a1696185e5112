"""Ingestion throughput: samples/s accepted by the push API and written into Kafka, per body format, and the
spool's drain rate after an outage.

Starts its own tansu broker. The push API runs in this process (as `watchkeeper produce push` does) with its
spool on local disk; concurrent HTTP clients post pre-built bodies. A sample counts once Kafka has
acknowledged it (the spool is empty), not when the API answered. The baseline, measured in the same run, is
aiokafka sending the same encoded batches straight to the topic (no HTTP, no validation, no spool).

    PYTHONPATH=. python -m bench.ingest.throughput              # ~1 minute
    PYTHONPATH=. python -m bench.ingest.throughput --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson
from aiohttp import web
from aiokafka import AIOKafkaProducer

from watchkeeper.plumbing.broker import free_port, start_broker
from watchkeeper.plumbing.topics import ensure_topics
from watchkeeper.producers.push_api import create_push_app
from watchkeeper.producers.remote_write import encode_write_request
from watchkeeper.producers.sender import BatchSender
from watchkeeper.schemas.codec import encode
from watchkeeper.schemas.samples import SampleBatch

T0 = 1_790_000_000.0


def json_body(i: int, series: int, points: int) -> bytes:
    """One SampleBatch: `series` series of `points` points each (an application pushing its buffer)."""
    return orjson.dumps({"source": f"app-{i % 16}", "labels": {"job": "bench"}, "series": [
        {"name": "http_request_duration_seconds", "labels": {"route": f"/r{s}", "pod": f"p{i % 16}"},
         "ts": [T0 + i + k * 0.1 for k in range(points)], "values": [0.001 * (s + k) for k in range(points)]}
        for s in range(series)]})


def remote_write_body(i: int, series: int) -> bytes:
    """One remote_write request as Prometheus sends it: many series, one sample each."""
    return encode_write_request([({"__name__": "node_cpu_seconds_total", "cpu": str(s % 64), "mode": "user",
                                   "instance": f"host-{s // 64}:9100", "job": "node"},
                                  [(int((T0 + i) * 1000), float(i + s))]) for s in range(series)])


async def post_all(url: str, bodies: list[bytes], content_type: str, clients: int) -> float:
    """Post every body with `clients` concurrent connections; seconds taken."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)

    async def client(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            async with session.post(url, data=body, headers={"Content-Type": content_type}) as resp:
                if resp.status >= 300:
                    raise RuntimeError(f"{url}: {resp.status} {await resp.text()}")

    t = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as session:
        await asyncio.gather(*(client(session) for _ in range(clients)))
    return time.perf_counter() - t


async def until_drained(sender: BatchSender) -> None:
    while sender.spool.pending():
        await asyncio.sleep(0.005)


async def measure_push(bootstrap: str, tmp: Path, name: str, path: str, bodies: list[bytes], samples: int,
                       content_type: str, clients: int) -> dict[str, float]:
    topic = f"bench.{name}"
    await ensure_topics(bootstrap, {topic: 8})
    sender = BatchSender(bootstrap, topic, tmp / f"spool-{name}", self_metrics_seconds=0)
    await sender.start()
    runner = web.AppRunner(create_push_app(sender), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    cpu0, t0 = time.process_time(), time.perf_counter()
    accepted_s = await post_all(f"http://127.0.0.1:{port}{path}", bodies, content_type, clients)
    await until_drained(sender)
    total_s, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    await runner.cleanup()
    await sender.stop()
    assert sender.stats()["sent_points"] == samples, sender.stats()
    return {"samples": samples, "accepted_per_s": samples / accepted_s, "in_kafka_per_s": samples / total_s,
            "cpu_us_per_sample": cpu / samples * 1e6}


async def measure_drain(bootstrap: str, tmp: Path, batches: list[SampleBatch]) -> dict[str, float]:
    """Fill the spool with the broker unreachable (the sender not started), then time the drain."""
    topic = "bench.drain"
    await ensure_topics(bootstrap, {topic: 8})
    sender = BatchSender(bootstrap, topic, tmp / "spool-drain", self_metrics_seconds=0)
    t = time.perf_counter()
    for b in batches:
        await sender.send(b)
    spool_s = time.perf_counter() - t
    samples = sum(b.point_count() for b in batches)
    t = time.perf_counter()
    await sender.start()
    await until_drained(sender)
    drain_s = time.perf_counter() - t
    await sender.stop()
    return {"samples": samples, "batches": len(batches), "spooled_per_s": samples / spool_s,
            "drained_per_s": samples / drain_s, "drained_batches_per_s": len(batches) / drain_s}


async def measure_floor(bootstrap: str, batches: list[SampleBatch]) -> dict[str, float]:
    topic = "bench.floor"
    await ensure_topics(bootstrap, {topic: 8})
    encoded = [(b.source.encode(), encode(b)) for b in batches]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=1 << 20,
                                max_request_size=8 << 20)
    await producer.start()
    t = time.perf_counter()
    futures = [await producer.send(topic, v, key=k) for k, v in encoded]
    await asyncio.gather(*futures)
    secs = time.perf_counter() - t
    await producer.stop()
    samples = sum(b.point_count() for b in batches)
    return {"samples": samples, "in_kafka_per_s": samples / secs}


async def run(seconds: float, clients: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="wk-bench-ingest-"))
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    broker = start_broker("127.0.0.1", port, log_path=tmp / "tansu.log")
    try:
        # Sizes chosen so each phase takes roughly `seconds` / 4 on the reference machine.
        scale = max(1, int(seconds))
        json_bodies = [json_body(i, 50, 10) for i in range(40 * scale)]  # 500 samples per body
        rw_bodies = [remote_write_body(i, 2000) for i in range(6 * scale)]  # Prometheus' max_samples_per_send
        batches = [SampleBatch.model_validate_json(b) for b in json_bodies]
        floor = await measure_floor(bootstrap, batches)
        js = await measure_push(bootstrap, tmp, "json", "/api/v1/samples", json_bodies, 500 * len(json_bodies),
                                "application/json", clients)
        rw = await measure_push(bootstrap, tmp, "rw", "/api/v1/write", rw_bodies, 2000 * len(rw_bodies),
                                "application/x-protobuf", clients)
        drain = await measure_drain(bootstrap, tmp, batches)
    finally:
        broker.terminate()
        broker.wait(timeout=10)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\ningestion on {os.cpu_count()} cores, {clients} concurrent HTTP clients, one process; "
          f"peak RSS {rss:.0f} MiB\n")
    print("| path | samples | accepted/s | in Kafka/s | CPU µs/sample | vs floor |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| floor: aiokafka sends the encoded batches | {floor['samples']:,} | – "
          f"| {floor['in_kafka_per_s']:,.0f} | – | 1.00 |")
    for label, r in (("push JSON SampleBatch, 500 samples/body", js),
                     ("push remote_write, 2,000 series × 1 sample/request", rw)):
        print(f"| {label} | {r['samples']:,} | {r['accepted_per_s']:,.0f} | {r['in_kafka_per_s']:,.0f} "
              f"| {r['cpu_us_per_sample']:.2f} | {r['in_kafka_per_s'] / floor['in_kafka_per_s']:.2f} |")
    print(f"| spool drain after an outage ({drain['batches']:,} batches of 500) | {drain['samples']:,} "
          f"| {drain['spooled_per_s']:,.0f} (spooling) | {drain['drained_per_s']:,.0f} | – "
          f"| {drain['drained_per_s'] / floor['in_kafka_per_s']:.2f} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10, help="workload scale (bodies grow with it)")
    ap.add_argument("--clients", type=int, default=8, help="concurrent HTTP clients")
    args = ap.parse_args()
    asyncio.run(run(args.seconds, args.clients))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

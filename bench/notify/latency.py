"""Alert event in to webhook request out: latency under a steady alert rate, group_wait 0.

Starts its own tansu broker on a free port, the notify sink in a subprocess (the real `watchkeeper sink
notify`), and a local HTTP receiver; produces N alerts/s for D seconds, each in its own group, with its
send time in an annotation; the receiver records when each arrives. The baseline, measured in the same
run, is the bare aiohttp POST round trip to the same receiver.

    PYTHONPATH=. python -m bench.notify.latency              # 1,000 alerts/s for 10 s
    PYTHONPATH=. python -m bench.notify.latency --rate 500 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import numpy as np
import orjson
from aiokafka import AIOKafkaProducer

from tests.conftest import write_config
from tests.integration.notify_peers import RecordingServer
from watchkeeper.plumbing.broker import free_port, start_broker
from watchkeeper.plumbing.config import Config
from watchkeeper.plumbing.topics import ensure_topics, topic_plan
from watchkeeper.schemas.alerts import AlertEvent
from watchkeeper.schemas.codec import encode


async def produce(bootstrap: str, topic: str, rate: int, seconds: int) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2)
    await producer.start()
    n, start = 0, time.time()
    try:
        for tick in range(seconds * 10):  # 10 slices a second keep the rate steady
            due = start + tick / 10
            await asyncio.sleep(max(0.0, due - time.time()))
            for _ in range(rate // 10):
                name = f"Bench{n}"
                ev = AlertEvent(fingerprint=f"{n:016x}", rule=name, state="firing", labels={"alertname": name},
                                annotations={"sent": repr(time.time())}, starts_at=time.time(), event_time=time.time())
                await producer.send(topic, encode(ev), key=ev.fingerprint.encode())
                n += 1
        await producer.flush()
    finally:
        await producer.stop()
    return n


async def baseline(url: str, n: int = 2000) -> np.ndarray:
    out = []
    async with aiohttp.ClientSession() as s:
        for _ in range(n):
            t0 = time.perf_counter()
            async with s.post(url, data=b'{"x": 1}') as resp:
                await resp.read()
            out.append(time.perf_counter() - t0)
    return np.asarray(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--seconds", type=int, default=10)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="wk-bench-notify-"))
    port = free_port()
    broker = start_broker("127.0.0.1", port, log_path=tmp / "tansu.log")
    server = RecordingServer().start()
    sink = None
    try:
        cfg = Config(data_dir=str(tmp / "data"))
        cfg.kafka.bootstrap = f"127.0.0.1:{port}"
        cfg.kafka.session_timeout = 6.0
        asyncio.run(ensure_topics(cfg.kafka.bootstrap, topic_plan(cfg.kafka.topics)))
        (tmp / "am.yml").write_text(
            "route:\n  receiver: r\n  group_by: [alertname]\n  group_wait: 0s\n  group_interval: 5m\n"
            f"receivers:\n  - name: r\n    webhook_configs: [{{url: '{server.url}/hook'}}]\n")
        cfg.notify.alertmanager_config = str(tmp / "am.yml")
        cfg_path = write_config(cfg, tmp / "watchkeeper.yaml")
        sink = subprocess.Popen([sys.executable, "-m", "watchkeeper", "sink", "notify", "--config", str(cfg_path)],
                                stdout=open(tmp / "sink.log", "wb"), stderr=subprocess.STDOUT)  # noqa: SIM115
        time.sleep(8)  # consumer group join (tansu waits session_timeout/2 on the first JoinGroup)
        base = asyncio.run(baseline(server.url + "/baseline"))
        server.requests.clear()
        sent = asyncio.run(produce(cfg.kafka.bootstrap, cfg.kafka.topics.alerts, args.rate, args.seconds))
        deadline = time.time() + 120
        while len(server.at("/hook")) < sent and time.time() < deadline:
            time.sleep(0.2)
        got = server.at("/hook")
        lat = np.asarray([r.time - float(orjson.loads(orjson.dumps(r.body))["alerts"][0]["annotations"]["sent"])
                          for r in got])
        p50, p99 = np.percentile(lat, [50, 99]) * 1000
        b50, b99 = np.percentile(base, [50, 99]) * 1000
        print(f"alerts sent {sent} at {args.rate}/s for {args.seconds} s; webhook requests received {len(got)}")
        print("| path | p50 ms | p99 ms | max ms |\n|---|---:|---:|---:|")
        worst = lat.max() * 1000
        print(f"| alert on wk.alerts -> webhook request (group_wait 0) | {p50:.1f} | {p99:.1f} | {worst:.1f} |")
        print(f"| baseline: bare aiohttp POST round trip | {b50:.2f} | {b99:.2f} | {base.max() * 1000:.2f} |")
        print(f"ratio p99 / baseline p99: {p99 / b99:.0f}x")
        return 0 if len(got) == sent else 1
    finally:
        if sink is not None:
            sink.terminate()
            sink.wait(30)
        server.stop()
        broker.terminate()
        broker.wait(10)


if __name__ == "__main__":
    sys.exit(main())

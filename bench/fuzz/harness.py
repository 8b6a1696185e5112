"""Run one generated input against one ingestion path and check the bar every path must meet.

The bar: no 5xx and no exception other than the path's own error type (a crash), no input that takes longer
than `HANG_SECONDS` (a hang), every refused HTTP request answered with a 4xx, and every accepted sample
accounted for: the samples the push API says it accepted are exactly the samples that appeared in its spool,
and every spooled record decodes as a `SampleBatch` within every ingest limit. The push API runs in process
behind a real HTTP server (aiohttp's TestServer on 127.0.0.1), in front of a real spool; nothing drains the
spool to Kafka here (the harness reads and acknowledges it), so the broker plays no part in what is measured.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bench.fuzz.inputs import NOW
from watchkeeper.core.sample_decode import decode_samples
from watchkeeper.core.series_registry import SeriesRegistry
from watchkeeper.plumbing.self_metrics import INGEST_ACCEPTED
from watchkeeper.producers.push_api import create_push_app
from watchkeeper.producers.remote_write import RemoteWriteError, decode_write_request
from watchkeeper.producers.sender import BatchSender
from watchkeeper.schemas.codec import SchemaError, decode_sample_message
from watchkeeper.schemas.limits import IngestLimits, LimitError, check_batches

HANG_SECONDS = 10.0
LIMITS = IngestLimits()
_ENDPOINTS = {"json": "samples", "text": "pushgateway", "remote_write": "remote_write"}


@dataclass
class Tally:
    """What a run saw; `problems` holds every crash, hang or broken promise with the input that caused it."""

    inputs: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)  # "<path> <status or accepted/refused>"
    accepted_samples: int = 0
    spooled_samples: int = 0
    slowest: float = 0.0
    slowest_path: str = ""
    problems: list[tuple[str, str, bytes]] = field(default_factory=list)  # (path, what, input)
    disagreements: list[bytes] = field(default_factory=list)  # worker fast decode vs the contract

    def problem(self, path: str, what: str, data: bytes) -> None:
        self.problems.append((path, what, data[:100_000]))

    def timed(self, seconds: float, path: str, data: bytes) -> None:
        if seconds > self.slowest:
            self.slowest, self.slowest_path = seconds, f"{path}, {len(data):,} bytes"
        if seconds > HANG_SECONDS:
            self.problem(path, f"hang: {seconds:.1f} s", data)


class PushTarget:
    """The push API with a spool behind it; `send` posts one input and checks what it did to the spool."""

    def __init__(self, spool_dir: Path, tally: Tally) -> None:
        self.tally = tally
        self.sender = BatchSender("127.0.0.1:1", "fuzz", spool_dir, self_metrics_seconds=0,
                                  max_spool_bytes=4 * 2**30)
        self.app = create_push_app(self.sender, limits=LIMITS, clock=lambda: NOW)

    async def __aenter__(self) -> PushTarget:
        self.client: TestClient[web.Request, web.Application] = TestClient(TestServer(self.app))
        await self.client.start_server()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.client.close()
        self.sender.spool.close()

    async def send(self, kind: str, body: bytes, path: str = "") -> int:
        url = {"json": "/api/v1/samples", "remote_write": "/api/v1/write"}.get(kind, path)
        endpoint = _ENDPOINTS[kind]
        spool = self.sender.spool
        spooled_before = spool.stats.spooled_points
        accepted_before = INGEST_ACCEPTED.labels(endpoint)._value.get()
        self.tally.inputs[kind] += 1
        started = time.perf_counter()
        try:
            async with asyncio.timeout(HANG_SECONDS * 3):
                resp = await self.client.post(url, data=body)
                text = await resp.text()
        except TimeoutError:
            self.tally.problem(kind, "hang: no answer", body)
            return 0
        self.tally.timed(time.perf_counter() - started, kind, body)
        status = resp.status
        spooled = spool.stats.spooled_points - spooled_before
        accepted = int(INGEST_ACCEPTED.labels(endpoint)._value.get() - accepted_before)
        self.tally.outcomes[f"{kind} {status}"] += 1
        self.tally.accepted_samples += accepted
        self.tally.spooled_samples += spooled
        if status >= 500 or status < 200 or 300 <= status < 400:
            self.tally.problem(kind, f"HTTP {status}: {text[:300]}", body + b" @ " + url.encode())
        elif spooled != accepted:
            self.tally.problem(kind, f"HTTP {status}: {accepted} samples accepted but {spooled} spooled", body)
        elif status >= 400 and spooled and not (kind == "remote_write" and status == 400):
            self.tally.problem(kind, f"HTTP {status} yet {spooled} samples spooled (not all or nothing)", body)
        elif status == 202 and orjson.loads(text)["accepted_samples"] != spooled:
            self.tally.problem(kind, f"answered {text} but {spooled} spooled", body)
        self._check_spooled(kind, body)
        return status

    def _check_spooled(self, kind: str, body: bytes) -> None:
        """Every record the request added decodes and is within the limits; then it is acknowledged."""
        spool = self.sender.spool
        while records := spool.read(max_records=1000, max_bytes=2**30):
            for record in records:
                try:
                    check_batches([decode_sample_message(record.value)], LIMITS, NOW)
                except (SchemaError, LimitError) as exc:
                    self.tally.problem(kind, f"spooled a record that is not a valid batch: {exc}", body)
            spool.ack(records[-1].number + 1)


def decode_one(kind: str, data: bytes, registry: SeriesRegistry, tally: Tally) -> None:
    """The decoders without HTTP: remote_write's, the wire contract's and the worker's fast one."""
    tally.inputs[kind] += 1
    started = time.perf_counter()
    outcome = "accepted"
    try:
        if kind == "remote_write_decode":
            try:
                decode_write_request(data, LIMITS, NOW)
            except (RemoteWriteError, LimitError):
                outcome = "refused"
        else:
            contract: Any = None
            try:
                contract = decode_sample_message(data)
            except SchemaError:
                outcome = "refused"
            try:
                decode_samples(data, registry)
                worker_ok = True
            except SchemaError:
                worker_ok = False
            if worker_ok != (contract is not None):
                tally.disagreements.append(data[:100_000])
    except Exception as exc:  # the bar: nothing but the path's own error type
        tally.problem(kind, f"crash: {type(exc).__name__}: {exc}"[:500], data)
        outcome = "crash"
    tally.timed(time.perf_counter() - started, kind, data)
    tally.outcomes[f"{kind} {outcome}"] += 1

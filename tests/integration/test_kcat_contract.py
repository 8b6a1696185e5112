"""Given SampleBatches on wk.samples, expect kcat (librdkafka, a non-Python client) to read them and the test
to decode what it printed: the topic contract holds outside aiokafka.

kcat 1.7.1 (librdkafka 2.0.2, Debian) cannot use tansu 0.6.0's ApiVersions v3 answer ("Read underflow":
tansu sends the feature tagged fields, and that librdkafka skips a tagged field one byte short). With
`api.version.request=false` and `broker.version.fallback=0.9.0` librdkafka skips the handshake and uses
the oldest Metadata/Fetch versions, which tansu serves (it returns v2 record batches, which librdkafka
reads); ListOffsets v0 is broken on tansu, so the read starts at the absolute offset 0, not `beginning`.
With WK_KAFKA_BOOTSTRAP pointing at a real Kafka (e.g. docker-compose.yml) the test runs without them."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess

import pytest

from tests.integration.kafka_io import produce
from watchkeeper.plumbing.topics import ensure_topics
from watchkeeper.schemas.codec import decode_sample_message, encode
from watchkeeper.schemas.samples import SampleBatch, SeriesBlock

pytestmark = pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat not installed (apt-get install kcat)")
# Only for tansu: skip the ApiVersions handshake librdkafka 2.0.2 cannot parse (see the module docstring).
TANSU_COMPAT = ["-X", "api.version.request=false", "-X", "broker.version.fallback=0.9.0"]


def test_kcat_reads_samples_and_they_decode(broker: str) -> None:
    real_kafka = os.environ.get("WK_KAFKA_BOOTSTRAP")
    bootstrap = real_kafka or broker
    topic = f"kcat{os.getpid()}.samples"
    batches = [SampleBatch(source=f"host-{i}", labels={"job": "kcat"},
                           series=[SeriesBlock(name="temperature_celsius", labels={"room": str(i)},
                                               ts=[1_790_000_000.0 + i], values=[20.5 + i])]) for i in range(5)]

    async def load() -> None:
        await ensure_topics(bootstrap, {topic: 8})
        await produce(bootstrap, topic, [(b.source.encode(), encode(b)) for b in batches])

    asyncio.run(load())
    compat = [] if real_kafka else TANSU_COMPAT
    run = subprocess.run(["kcat", "-C", "-b", bootstrap, *compat, "-t", topic, "-o", "0", "-e", "-q", "-c", "10",
                          "-m", "10", "-f", "%k\t%s\n"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    lines = [line.split("\t", 1) for line in run.stdout.splitlines() if line]
    decoded = {key: decode_sample_message(value.encode()) for key, value in lines}
    assert set(decoded) == {b.source for b in batches}
    for b in batches:
        assert decoded[b.source] == b

"""Create Watchkeeper's topics with explicit partitions and configs before any worker starts.

Never rely on auto-creation: tansu auto-creates unknown topics with 4 partitions, and its DescribeConfigs
returns only what was set at creation, so Kafka's defaults are set explicitly here.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from watchkeeper.plumbing.config import TopicsConfig
from watchkeeper.plumbing.errors import WatchkeeperError
from watchkeeper.schemas.topics import DEFAULT_TOPICS

# Kafka's own defaults, spelled out for brokers that only report what was set.
KAFKA_DEFAULT_CONFIGS = {
    "cleanup.policy": "delete",
    "retention.ms": str(7 * 24 * 3600 * 1000),
    "max.message.bytes": str(8 * 1024 * 1024),
}


def topic_plan(topics: TopicsConfig) -> dict[str, int]:
    """Each configured topic name with its partition count (schemas/topics.py)."""
    names = topics.model_dump()
    return {names[key]: spec.partitions for key, spec in DEFAULT_TOPICS.items()}


async def ensure_topics(bootstrap: str, topics: dict[str, int], replication: int = 1, timeout: float = 30.0) -> None:
    """Create each missing topic; an existing one with the wrong partition count is an error."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            await admin.start()
            break
        except KafkaConnectionError:
            if asyncio.get_running_loop().time() > deadline:
                msg = f"no Kafka broker answers at {bootstrap}; start one (watchkeeper broker)"
                raise WatchkeeperError(msg) from None
            await asyncio.sleep(0.5)
    try:
        existing = await _partition_counts(admin)
        missing = [
            NewTopic(name, num_partitions=n, replication_factor=replication, topic_configs=KAFKA_DEFAULT_CONFIGS)
            for name, n in topics.items()
            if name not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
        existing = await _partition_counts(admin)
        for name, n in topics.items():
            if existing.get(name) != n:
                raise WatchkeeperError(
                    f"topic {name} has {existing.get(name)} partitions, Watchkeeper needs {n}; "
                    "delete it or configure another topic name"
                )
    finally:
        await admin.close()


async def _partition_counts(admin: AIOKafkaAdminClient) -> dict[str, int]:
    meta = await admin.describe_topics()
    return {t["topic"]: len(t["partitions"]) for t in meta if not t.get("error_code")}

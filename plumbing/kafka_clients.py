"""The Kafka clients of every component, built from `kafka:` settings in one place.

A group member's session and heartbeat come from `KafkaConfig` (short sessions make tansu's first JoinGroup
quick; the heartbeat is a third of the session at most), and offsets are always committed by the caller, after
its output is acknowledged (DESIGN, exactly-once): no component can get either wrong by building its own.
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from watchkeeper.plumbing.config import KafkaConfig


def group_consumer(kafka: KafkaConfig, *topics: str, group_id: str, **options: Any) -> AIOKafkaConsumer:
    """A consumer-group member on `topics` (none: subscribe later), committing only when told to."""
    return AIOKafkaConsumer(
        *topics, bootstrap_servers=kafka.bootstrap, group_id=group_id, enable_auto_commit=False,
        session_timeout_ms=int(kafka.session_timeout * 1000),
        heartbeat_interval_ms=int(kafka.heartbeat_interval * 1000), **options)


def producer(kafka: KafkaConfig, **options: Any) -> AIOKafkaProducer:
    return AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, **options)

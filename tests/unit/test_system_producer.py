"""Given what psutil reports on this host, expect one batch with every system series at the given time."""

from __future__ import annotations

import psutil

from watchkeeper.producers.system import collect_system
from watchkeeper.schemas import SampleBatch, decode_sample_message, encode


def test_one_batch_of_every_system_series() -> None:
    batch = collect_system(psutil, 1_700_000_000.0, "host-a")
    assert batch.source == "host-a" and batch.labels == {"host": "host-a", "job": "system"}
    names = {b.name for b in batch.series}
    assert {
        "node_cpu_seconds_total", "node_cpu_percent", "node_memory_available_bytes", "node_swap_total_bytes",
        "node_filesystem_used_percent", "node_network_receive_bytes_total", "node_load1", "node_processes",
    } <= names
    modes = {b.labels["mode"] for b in batch.series if b.name == "node_cpu_seconds_total"}
    assert {"user", "system", "idle"} <= modes
    assert all(b.kind == "counter" for b in batch.series if b.name.endswith("_total"))
    assert all(b.ts == [1_700_000_000.0] for b in batch.series)
    assert decode_sample_message(encode(batch)) == batch
    assert isinstance(batch, SampleBatch)

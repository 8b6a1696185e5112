"""The psutil system producer: this host's CPU, memory, swap, disks, network, load and processes.

`collect_system` is a pure function of what psutil reports (passed in) and the time (passed in), so it
is tested without a clock; `run_system_producer` is the loop that sends one batch per interval.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from types import ModuleType
from typing import Any

import psutil

from watchkeeper.plumbing.config import SystemProducerConfig
from watchkeeper.producers.sender import BatchSender
from watchkeeper.producers.ticks import wait_next_tick
from watchkeeper.schemas.samples import SampleBatch, SeriesBlock

log = logging.getLogger("watchkeeper.produce.system")

_IGNORED_FS = {"tmpfs", "devtmpfs", "overlay", "squashfs", "proc", "sysfs", "cgroup", "cgroup2", "nsfs"}


def collect_system(ps: ModuleType | Any, now: float, host: str) -> SampleBatch:
    """One batch of every system series at `now`. Counters keep Prometheus' node_exporter names."""
    blocks: list[SeriesBlock] = []

    def add(name: str, value: float, kind: str = "gauge", **labels: str) -> None:
        blocks.append(SeriesBlock(name=name, labels=labels, kind=kind,
                                  ts=[now], values=[float(value)]))

    times = ps.cpu_times()
    for mode in times._fields:
        add("node_cpu_seconds_total", getattr(times, mode), "counter", mode=mode)
    percent = ps.cpu_times_percent(interval=None)
    for mode in percent._fields:
        add("node_cpu_percent", getattr(percent, mode), mode=mode)
    add("node_cpu_usage_percent", ps.cpu_percent(interval=None))
    add("node_cpu_count", ps.cpu_count() or 0)

    mem = ps.virtual_memory()
    for field in ("total", "available", "used", "free"):
        add(f"node_memory_{field}_bytes", getattr(mem, field))
    add("node_memory_used_percent", mem.percent)
    swap = ps.swap_memory()
    for field in ("total", "used", "free"):
        add(f"node_swap_{field}_bytes", getattr(swap, field))
    add("node_swap_in_bytes_total", getattr(swap, "sin", 0), "counter")
    add("node_swap_out_bytes_total", getattr(swap, "sout", 0), "counter")

    for part in ps.disk_partitions(all=False):
        if part.fstype in _IGNORED_FS:
            continue
        try:
            usage = ps.disk_usage(part.mountpoint)
        except OSError:
            continue
        for field in ("total", "used", "free"):
            add(f"node_filesystem_{field}_bytes", getattr(usage, field), mountpoint=part.mountpoint,
                fstype=part.fstype, device=part.device)
        add("node_filesystem_used_percent", usage.percent, mountpoint=part.mountpoint, fstype=part.fstype,
            device=part.device)

    for disk, io in (ps.disk_io_counters(perdisk=True) or {}).items():
        add("node_disk_read_bytes_total", io.read_bytes, "counter", device=disk)
        add("node_disk_written_bytes_total", io.write_bytes, "counter", device=disk)
        add("node_disk_reads_completed_total", io.read_count, "counter", device=disk)
        add("node_disk_writes_completed_total", io.write_count, "counter", device=disk)

    for nic, io in (ps.net_io_counters(pernic=True) or {}).items():
        add("node_network_receive_bytes_total", io.bytes_recv, "counter", device=nic)
        add("node_network_transmit_bytes_total", io.bytes_sent, "counter", device=nic)
        add("node_network_receive_packets_total", io.packets_recv, "counter", device=nic)
        add("node_network_transmit_packets_total", io.packets_sent, "counter", device=nic)
        add("node_network_receive_errs_total", io.errin, "counter", device=nic)
        add("node_network_transmit_errs_total", io.errout, "counter", device=nic)

    for window, value in zip(("1", "5", "15"), ps.getloadavg(), strict=True):
        add(f"node_load{window}", value)
    add("node_processes", len(ps.pids()))
    return SampleBatch(source=host, labels={"host": host, "job": "system"}, series=blocks)


async def run_system_producer(settings: SystemProducerConfig, sender: BatchSender, *,
                              stop: asyncio.Event | None = None) -> None:
    """Send one batch per `settings.interval` (`producers.system.interval`) until `stop` is set."""
    stop = stop or asyncio.Event()
    host = socket.gethostname()
    psutil.cpu_times_percent(interval=None)  # the first call only primes psutil's percent counters
    psutil.cpu_percent(interval=None)
    interval = settings.interval
    while not stop.is_set():
        await sender.send(collect_system(psutil, time.time(), host))
        await wait_next_tick(interval, stop)

"""Process supervision for `watchkeeper up`: each component is a child process in its own session, so
Ctrl-C reaches only the supervisor, which stops the children in reverse start order (SIGTERM, then
SIGKILL after a grace period) and leaves no process behind. With a metrics directory (prometheus-client's
multiprocess mode, `plumbing.self_metrics`), a child that exits has its live gauges dropped from it. Each
child (a sink, the producers) runs `until_signalled`, so SIGTERM stops it cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from watchkeeper.plumbing.self_metrics import mark_dead

log = logging.getLogger("watchkeeper.up")
S = TypeVar("S")
R = TypeVar("R")


async def until_signalled(main: Callable[[S, asyncio.Event], Awaitable[R]], settings: S) -> R:
    """`main(settings, stop)` with `stop` set on SIGINT or SIGTERM, so a component finishes what it holds."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return await main(settings, stop)


@dataclass
class Component:
    name: str
    argv: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = field(default=0.0)
    env: dict[str, str] | None = None  # None: this process's environment

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log_path, "ab")  # noqa: SIM115 (the child owns it)
        self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True, env=self.env)
        out.close()
        self.started_at = time.monotonic()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def watchkeeper_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "watchkeeper", *args]


class Supervisor:
    def __init__(self, grace: float = 15.0, max_restarts: int = 5, metrics_dir: Path | None = None) -> None:
        self.components: list[Component] = []
        self.grace = grace
        self.max_restarts = max_restarts
        self.metrics_dir = metrics_dir

    def add(self, component: Component) -> Component:
        self.components.append(component)
        component.start()
        return component

    def check(self) -> list[str]:
        """Restart components that died (a few times, with backoff); return messages about it."""
        notes = []
        for c in self.components:
            if c.alive() or c.proc is None:
                continue
            code = c.proc.returncode
            self._exited(c.proc.pid)
            if c.restarts >= self.max_restarts:
                notes.append(f"{c.name} exited with code {code} and was restarted {c.restarts} times; "
                             f"giving up (log: {c.log_path})")
                c.proc = None
                continue
            if time.monotonic() - c.started_at < 2.0 * (c.restarts + 1):
                continue
            c.restarts += 1
            notes.append(f"{c.name} exited with code {code}; restarting (log: {c.log_path})")
            c.start()
        return notes

    def stop(self) -> None:
        for c in reversed(self.components):
            if c.alive():
                assert c.proc is not None
                _signal_group(c.proc, signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        for c in reversed(self.components):
            if c.proc is None:
                continue
            try:
                c.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0f s; killing it", c.name, self.grace)
                _signal_group(c.proc, signal.SIGKILL)
                c.proc.wait()
            # Kill anything the component left in its session (e.g. helper processes).
            _signal_group(c.proc, signal.SIGKILL)
            self._exited(c.proc.pid)

    def _exited(self, pid: int) -> None:
        if self.metrics_dir is not None:
            mark_dead(pid, self.metrics_dir)


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)

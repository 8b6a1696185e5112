"""`kill -USR2 <worker pid>` logs every asyncio task of the worker with its stack: the one way to see where
a worker that is alive but makes no progress waits (py-spy shows threads, not awaits)."""

from __future__ import annotations

import asyncio
import io
import logging
import signal
from typing import Any

log = logging.getLogger("watchkeeper.worker")


def awaits(coro: Any) -> list[str]:
    """Where a coroutine waits, outermost first: its frame and those of the coroutines it awaits (a task's
    own stack shows only the outermost)."""
    where = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
        if frame is not None:
            where.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None)
    return where


def dump_tasks() -> None:
    out = io.StringIO()
    tasks = asyncio.all_tasks()
    for task in sorted(tasks, key=lambda t: t.get_name()):
        print(f"--- {task.get_name()}", file=out)
        for line in awaits(task.get_coro()):
            print(f"    {line}", file=out)
    log.warning("%d tasks (SIGUSR2):\n%s", len(tasks), out.getvalue())


async def install_task_dump() -> None:
    """A Faust app task: the handler is installed on the worker's own loop."""
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR2, dump_tasks)

"""Report queries with progress on the terminal: each step shows its name, a spinner and elapsed time."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from clickhouse_connect.driver.client import Client
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from watchkeeper.reports.clickhouse_reader import ReaderError, query_rows


class QueryRunner:
    """Runs the queries of one report, counting steps on a rich progress bar (quiet when not a terminal)."""

    def __init__(self, client: Client, steps: int, quiet: bool | None = None) -> None:
        self.client = client
        self.timings: list[tuple[str, float]] = []
        console = Console(file=sys.stderr)
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=console,
            disable=quiet if quiet is not None else not console.is_terminal,
            transient=True,
        )
        self._task = self._progress.add_task("report", total=steps)

    def __enter__(self) -> QueryRunner:
        self._progress.start()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self._progress.stop()

    def expect(self, steps: int) -> None:
        """Set how many queries remain once a report knows (e.g. one chart query per SLO found)."""
        done = self._progress.tasks[0].completed
        self._progress.update(self._task, total=done + steps)

    def rows(self, step: str, sql: str, parameters: dict[str, Any] | None = None) -> Sequence[Sequence[Any]]:
        """Run one report query; its rows. A ClickHouse error names the step that failed."""
        self._progress.update(self._task, description=step)
        began = time.perf_counter()
        try:
            rows = query_rows(self.client, sql, parameters)
        except Exception as exc:
            raise ReaderError(f"report query '{step}' failed: {exc}") from None
        self.timings.append((step, time.perf_counter() - began))
        self._progress.advance(self._task)
        return rows

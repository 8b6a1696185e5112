"""Where trend and capacity reports read series from: window aggregates (default, kept longest) or raw samples.

Both give a mean per series over a time condition; aggregates as sum(sum) / sum(count) over windows,
samples as the plain mean. Each is read `FINAL` so replays never double a number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SourceName = Literal["aggregates", "samples"]


@dataclass(frozen=True)
class SeriesSource:
    table: str
    time_col: str
    sum_expr: str
    count_expr: str

    def mean_if(self, cond: str) -> str:
        """SQL for the mean of the rows meeting `cond` (NULL when there are none)."""
        return f"sumIf({self.sum_expr}, {cond}) / nullIf(sumIf({self.count_expr}, {cond}), 0)"

    def point_value(self) -> str:
        """SQL for one row's value: a window's mean, or a sample."""
        return f"{self.sum_expr} / {self.count_expr}" if self.count_expr != "1" else self.sum_expr


SOURCES: dict[str, SeriesSource] = {
    "aggregates": SeriesSource("aggregates", "start", "sum", "count"),
    "samples": SeriesSource("samples", "ts", "value", "1"),
}


def format_labels(labels: dict[str, str]) -> str:
    """`{k="v", ...}` like Prometheus, sorted, so a series reads the same everywhere."""
    return "{" + ", ".join(f'{k}="{labels[k]}"' for k in sorted(labels)) + "}"

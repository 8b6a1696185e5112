"""Report time ranges: `--from`/`--to` as ISO 8601 times, `now`, or offsets such as `-7d` from `now`.

Without `--from` a report covers its default span (30 d for SLOs, 7 d for trends and capacity) before `--to`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_OFFSET = re.compile(r"^(?:now)?-(\d+(?:\.\d+)?)([smhdw])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True)
class TimeRange:
    """A half-open interval [start, end) in UTC."""

    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    def label(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M} to {self.end:%Y-%m-%d %H:%M} UTC"


def parse_time(text: str, now: datetime) -> datetime:
    """`now`, `-7d` / `now-7d` (s, m, h, d, w), or an ISO 8601 time (naive times are UTC)."""
    text = text.strip()
    if text == "now":
        return now
    if m := _OFFSET.match(text):
        return now - timedelta(seconds=float(m.group(1)) * _UNIT[m.group(2)])
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not a time: {text!r} (use e.g. 2026-11-01, 2026-11-01T12:00Z, now or -7d)") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def parse_range(start: str | None, end: str | None, now: datetime, default_span: timedelta) -> TimeRange:
    end_t = parse_time(end, now) if end else now
    start_t = parse_time(start, now) if start else end_t - default_span
    if start_t >= end_t:
        raise ValueError(f"--from ({start_t:%Y-%m-%d %H:%M}) must be before --to ({end_t:%Y-%m-%d %H:%M})")
    return TimeRange(start_t, end_t)

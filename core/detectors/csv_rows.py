"""Parsing the `timestamp,value` rows the `detect` command reads, one line at a time, with clear errors.

Timestamps: epoch seconds (int or float; values above 1e11 are taken as epoch MILLISECONDS, since no
monitoring series starts after the year 5138) or ISO 8601 (`2024-05-01T12:00:00Z`, `2024-05-01 12:00:00`,
with or without offset; naive times are UTC).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

_MS_THRESHOLD = 1e11


class RowError(ValueError):
    """A row that cannot be scored; the message says which field and why."""


def parse_timestamp(text: str) -> float:
    try:
        t = float(text)
    except ValueError:
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise RowError(f"timestamp {text!r} is neither epoch seconds nor ISO 8601") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return dt.timestamp()
    if not math.isfinite(t):
        raise RowError(f"timestamp {text!r} is not finite")
    return t / 1000.0 if abs(t) > _MS_THRESHOLD else t


def parse_value(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise RowError(f"value {text!r} is not a number") from None
    if not math.isfinite(v):
        raise RowError(f"value {text!r} is not finite")
    return v


def split_row(line: str) -> tuple[str, str]:
    """``'1700000000, 3.5'`` -> ``('1700000000', '3.5')``; quotes and spaces around fields are dropped."""
    parts = [p.strip().strip('"').strip() for p in line.split(",")]
    if len(parts) != 2:
        raise RowError(f"expected 2 fields 'timestamp,value', got {len(parts)}")
    return parts[0], parts[1]


def is_header(line: str) -> bool:
    """A first line whose value field is not a number (``timestamp,value``, ``time,cpu``...)."""
    try:
        _, value = split_row(line)
    except RowError:
        return False
    try:
        float(value)
    except ValueError:
        return True
    return False

"""Telling a bad row from an outage when ClickHouse rejects an insert, by inserting the batch in halves.

A batch that failed (twice) is split in halves, each half inserted, failing halves split again down to
single rows. The rule, per table and flush:
- an error that says ClickHouse (or the way to it) is not working -- no connection, table missing, read
  only, out of space, too many parts -- is an outage at once: stop, keep what is left, retry it later;
- a single row that fails while another part of the same batch succeeded is bad data, and so is a single
  row ClickHouse rejects with an error about the data itself (a violated constraint, a value out of
  range), even when nothing else succeeded (a poison row alone in its flush must not stall the sink);
- a single row failing with any other error while nothing succeeds is an outage: every part failed.
Rows are never dropped here: each ends inserted, rejected (the caller dead-letters it) or pending.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from clickhouse_connect.driver.exceptions import ClickHouseError, OperationalError

# ClickHouse error codes (src/Common/ErrorCodes.cpp) that mean the server, table or path to it is unwell.
OUTAGE_CODES = frozenset({
    60,   # UNKNOWN_TABLE
    81,   # UNKNOWN_DATABASE
    159,  # TIMEOUT_EXCEEDED
    164,  # READONLY
    202,  # TOO_MANY_SIMULTANEOUS_QUERIES
    209,  # SOCKET_TIMEOUT
    210,  # NETWORK_ERROR
    218,  # TABLE_IS_DROPPED
    241,  # MEMORY_LIMIT_EXCEEDED
    242,  # TABLE_IS_READ_ONLY
    243,  # NOT_ENOUGH_SPACE
    252,  # TOO_MANY_PARTS
    279,  # ALL_CONNECTION_TRIES_FAILED
    425,  # SYSTEM_ERROR
    497,  # ACCESS_DENIED
    516,  # AUTHENTICATION_FAILED
})
# ClickHouse error codes that blame the inserted values.
DATA_CODES = frozenset({
    6,    # CANNOT_PARSE_TEXT
    27,   # CANNOT_PARSE_INPUT_ASSERTION_FAILED
    38,   # CANNOT_PARSE_DATE
    41,   # CANNOT_PARSE_DATETIME
    53,   # TYPE_MISMATCH
    69,   # ARGUMENT_OUT_OF_BOUND
    70,   # CANNOT_CONVERT_TYPE
    72,   # CANNOT_PARSE_NUMBER
    117,  # INCORRECT_DATA
    131,  # TOO_LARGE_STRING_SIZE
    321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
    469,  # VIOLATED_CONSTRAINT
})


def error_kind(exc: Exception) -> str:
    """'outage', 'data' or 'unknown' for an exception an insert raised."""
    if isinstance(exc, OperationalError | ConnectionError | TimeoutError):
        return "outage"
    if isinstance(exc, ClickHouseError):
        code = getattr(exc, "code", None)
        if code is None or code in OUTAGE_CODES:
            return "outage"  # no ClickHouse code: the request never got an answer about the data
        return "data" if code in DATA_CODES else "unknown"
    return "unknown"  # e.g. a client-side conversion error: deterministic for these rows


@dataclass
class BisectOutcome:
    inserted: int = 0                                   # rows now in ClickHouse
    rejected: list[tuple[int, Exception]] = field(default_factory=list)  # (row index, why): bad data
    pending: list[tuple[int, int]] = field(default_factory=list)  # [lo, hi) ranges not inserted: outage
    outage: Exception | None = None                 # why `pending` is not empty


async def insert_bisecting(
    n: int,
    insert: Callable[[int, int], Awaitable[None]],
    failure: Exception,
    kind: Callable[[Exception], str] = error_kind,
) -> BisectOutcome:
    """Insert rows [0, n) of a batch whose whole insert already failed with `failure`, in halves.

    `insert(lo, hi)` inserts rows [lo, hi) or raises. Left halves go first, so what is left to try is
    always a contiguous tail, which is what an outage leaves pending.
    """
    out = BisectOutcome()
    undecided: list[tuple[int, Exception]] = []  # single rows that failed with an 'unknown' error
    stack: list[tuple[int, int, Exception | None]] = [(0, n, failure)]
    while stack:
        lo, hi, known = stack.pop()
        exc = known
        if exc is None:
            try:
                await insert(lo, hi)
                out.inserted += hi - lo
                continue
            except Exception as e:  # every failure is classified below
                exc = e
        what = kind(exc)
        if what == "outage":
            out.outage = exc
            out.pending = [(lo, hi)] + [(a, b) for a, b, _ in reversed(stack)]
            break
        if hi - lo > 1:
            mid = (lo + hi) // 2
            stack.append((mid, hi, None))
            stack.append((lo, mid, None))
        elif what == "data":
            out.rejected.append((lo, exc))
        else:
            undecided.append((lo, exc))
    if out.inserted:
        out.rejected.extend(undecided)  # another part of the batch went in: these rows are the problem
    elif undecided:
        out.outage = out.outage or undecided[0][1]  # every part failed: ClickHouse, not the data
        out.pending.extend((i, i + 1) for i, _ in undecided)
    out.rejected.sort(key=lambda r: r[0])
    out.pending.sort()
    return out

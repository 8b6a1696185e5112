"""Why the window engine refuses a sample: one code per reason, the same words in dead letters and metrics.

The bounds are what every stage can hold without overflow: event times from the epoch up to 2262-04-11
(int64 nanoseconds, pandas' and numpy's datetime range; ClickHouse's DateTime64(3) reaches 2299), values
of magnitude up to 1e300, so that even 10^8 of them in one window sum to a finite float64 (JSON, and so
the wire, has no infinity: orjson writes it as null).
"""

from __future__ import annotations

from enum import IntEnum

from watchkeeper.schemas.limits import MAX_ABS_VALUE, MAX_EPOCH_SECONDS

# One set of bounds with the front door (schemas/limits.py), so nothing accepted there is refused here.
MIN_TS = 0.0
MAX_TS = MAX_EPOCH_SECONDS  # int64 nanoseconds: 2262-04-11
__all__ = ["MAX_ABS_VALUE", "MAX_TS", "MIN_TS", "Reject"]


class Reject(IntEnum):
    """Per-sample verdict of `WindowEngine.ingest` (0: applied)."""

    OK = 0
    LATE = 1  # its window already closed (its source's watermark passed the window's end)
    FUTURE = 2  # more than `max_future` ahead of processing time
    BAD_TIMESTAMP = 3  # not a finite time within MIN_TS..MAX_TS
    BAD_VALUE = 4  # not finite, or beyond +-MAX_ABS_VALUE
    SERIES_LIMIT = 5  # a new series while the worker already holds `max_series`
    SOURCE_LIMIT = 6  # a new source while its partition's engine already holds `max_sources`

    @property
    def label(self) -> str:
        """The reason's word in dead letters and metric labels: `late`, `future`, `bad_timestamp`, ..."""
        return self.name.lower()

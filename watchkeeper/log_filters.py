"""Keep a broker outage from flooding the logs.

While Kafka is down, aiokafka logs an ERROR for every reconnect attempt (about two a second per client),
7,000 lines an hour that bury everything else. The first one of each kind is kept, then at most one a
minute carrying how many were held back, so the outage and its length stay visible.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

RECONNECT_PREFIXES = ("Unable connect to", "Unable to update metadata", "Failed fetch messages from")


class RepeatLimiter(logging.Filter):
    """Let one record through per `interval` seconds for each message template with a known prefix."""

    def __init__(self, interval: float = 60.0, prefixes: tuple[str, ...] = RECONNECT_PREFIXES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval = interval
        self.prefixes = prefixes
        self.clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        template = str(record.msg)
        if not template.startswith(self.prefixes):
            return True
        now = self.clock()
        last = self._last.get(template)
        if last is not None and now - last < self.interval:
            self._held[template] = self._held.get(template, 0) + 1
            return False
        self._last[template] = now
        held = self._held.pop(template, 0)
        if held and last is not None:
            record.msg = f"{template} ({held} more like this in the last {now - last:.0f} s)"
        return True


def limit_reconnect_errors(interval: float = 60.0) -> None:
    """Install the limiter on the aiokafka loggers that repeat during an outage (idempotent). A logger's
    filter sees only records created on that logger, hence each by name."""
    for name in ("aiokafka", "aiokafka.consumer.fetcher"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RepeatLimiter) for f in logger.filters):
            logger.addFilter(RepeatLimiter(interval))

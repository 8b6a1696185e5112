"""What reaches the logs: no secret, and no flood during a broker outage.

Secrets: `KNOWN_SECRETS` holds every secret of the loaded configuration (`plumbing.config` registers them,
the notification sink its receivers'); `install_secret_redaction` makes every log record of the process pass
through it (a log record factory, so Faust's, aiokafka's and pytest's handlers all get the redacted text),
exception tracebacks included. `redact` is the same for text that is not logged (error bodies, records).

Outages: while Kafka is down, aiokafka logs an ERROR for every reconnect attempt (about two a second per client),
7,000 lines an hour that bury everything else. The first one of each kind is kept, then at most one a
minute carrying how many were held back, so the outage and its length stay visible.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from watchkeeper.core.secrets import SecretRedactor

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


KNOWN_SECRETS = SecretRedactor()


def redact(text: str) -> str:
    """`text` without any known secret, and with every URL in it masked (`core.secrets`)."""
    return KNOWN_SECRETS.redact(text)


def redact_record(record: logging.LogRecord) -> None:
    """Rewrite `record` in place so that neither its message nor its traceback holds a secret."""
    try:
        message = record.getMessage()
    except Exception:  # a malformed call is logging's to report, with its own message
        return
    clean = redact(message)
    if clean != message:
        record.msg, record.args = clean, None
    if record.exc_info and not record.exc_text:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


def install_secret_redaction() -> None:
    """Make every log record created in this process redacted (idempotent)."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "redacts_secrets", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        redact_record(record)
        return record

    factory.redacts_secrets = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
    hook = sys.excepthook

    def excepthook(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
        if issubclass(kind, KeyboardInterrupt):
            hook(kind, exc, tb)
            return
        sys.stderr.write(redact("".join(traceback.format_exception(kind, exc, tb))))

    sys.excepthook = excepthook

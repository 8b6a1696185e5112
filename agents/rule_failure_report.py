"""What the rules agent does with its engines' evaluation failures: count each in `/metrics` per group, log it
(at most one line per rule per `LOG_EVERY` seconds, with how many were held back), and keep the last few per
rule in a file the dashboard shows (`plumbing.rule_failure_files`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from watchkeeper.core.rules.eval_failures import EvalFailure, EvalFailures
from watchkeeper.plumbing.rule_failure_files import REFRESH_SECONDS, write_failures
from watchkeeper.plumbing.self_metrics import RULE_EVAL_FAILURES

log = logging.getLogger("watchkeeper.rules")
LOG_EVERY = 60.0


class RuleFailureReport:
    def __init__(self, data_path: Path, owner: str, clock: Callable[[], float] = time.monotonic,
                 log_every: float = LOG_EVERY) -> None:
        self.data_path, self.owner, self.clock, self.log_every = data_path, owner, clock, log_every
        self.kept = EvalFailures()
        self._logged_at: dict[tuple[str, str], float] = {}
        self._held: dict[tuple[str, str], int] = {}
        self._dirty = False
        self._written_at = -float("inf")

    def report(self, failures: list[EvalFailure]) -> None:
        """Count, log (rate-limited per rule) and keep `failures`; never raises."""
        now = self.clock()
        for f in failures:
            RULE_EVAL_FAILURES.labels(f.group).inc()
            self.kept.add(f)
            key = (f.group, f.rule)
            last = self._logged_at.get(key)
            if last is not None and now - last < self.log_every:
                self._held[key] = self._held.get(key, 0) + 1
                continue
            held = self._held.pop(key, 0)
            more = ""
            if held and last is not None:
                more = f" ({held} more failures of this rule in the last {now - last:.0f} s)"
            log.warning("rules: evaluation failed: %s%s", f, more)
            self._logged_at[key] = now
        self.kept.take()  # the ring and counts are what is shown; nothing reads the pending queue here
        self._dirty = self._dirty or bool(failures)

    def publish(self) -> None:
        """Rewrite the dashboard's file when something changed, and at least every REFRESH_SECONDS while any
        failure is kept (a live process's file must not look stale). Never raises: the file is for display."""
        now = self.clock()
        if not self.kept.recent or not (self._dirty or now - self._written_at >= REFRESH_SECONDS):
            return
        try:
            write_failures(self.data_path, self.owner, self.kept)
        except OSError as exc:
            log.warning("rules: could not write the evaluation failures for the dashboard: %s", exc)
            return
        self._dirty, self._written_at = False, now

"""Where each worker process leaves its rules' last evaluation failures for the dashboard to show.

One small JSON file per process under `<data_dir>/rule-failures/` (the worker and the dashboard share the
data directory as they share the self-metrics directory), rewritten whole and atomically, so a reader never
sees half a file. A file not rewritten for `STALE_SECONDS` belongs to a process that is gone and is ignored.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from pathlib import Path

import orjson

from watchkeeper.core.rules.eval_failures import EvalFailures

DIRNAME = "rule-failures"
# Writers refresh their file at least this often (so a live process's file never looks stale) ...
REFRESH_SECONDS = 60.0
# ... and readers ignore files older than this.
STALE_SECONDS = 5 * REFRESH_SECONDS


def failures_dir(data_path: Path) -> Path:
    return data_path / DIRNAME


def write_failures(data_path: Path, owner: str, failures: EvalFailures) -> Path:
    """Replace this process's file with `failures` (atomically: write aside, then rename)."""
    folder = failures_dir(data_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (re.sub(r"[^A-Za-z0-9_.-]", "_", owner) + ".json")
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(orjson.dumps(failures.to_json()))
    os.replace(tmp, path)
    return path


def read_failures(data_path: Path, now: float | None = None) -> EvalFailures:
    """The failures of every live worker process, merged (unreadable or stale files are skipped)."""
    now = time.time() if now is None else now
    merged = EvalFailures()
    folder = failures_dir(data_path)
    if not folder.is_dir():
        return merged
    for path in sorted(folder.glob("*.json")):
        with contextlib.suppress(OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            if now - path.stat().st_mtime > STALE_SECONDS:
                continue
            merged.merge(EvalFailures.from_json(orjson.loads(path.read_bytes())))
    return merged

"""This process's peak resident set size, in bytes.

Not `getrusage().ru_maxrss`: Linux carries that over an exec from the forked parent, so a worker started
by the benchmark would report the benchmark's own size (which grows with every run) when that is bigger.
`VmHWM` in /proc/self/status is the high-water mark of this program's memory only."""

from __future__ import annotations

import resource
from pathlib import Path


def peak_rss() -> int:
    return _status("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def current_rss(pid: int | str = "self") -> int:
    """Resident set size now (`VmRSS`), in bytes; 0 if unknown (the process is gone)."""
    return _status("VmRSS", pid)


def _status(field: str, pid: int | str = "self") -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0

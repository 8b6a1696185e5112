"""This process's peak resident set size, in bytes.

Not `getrusage().ru_maxrss`: Linux carries that over an exec from the forked parent, so a worker started
by the benchmark would report the benchmark's own size (which grows with every run) when that is bigger.
`VmHWM` in /proc/self/status is the high-water mark of this program's memory only."""

from __future__ import annotations

import resource
from pathlib import Path


def peak_rss() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

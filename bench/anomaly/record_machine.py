"""Record this machine's own metrics with psutil, for the real-data part of the anomaly evaluation.

    PYTHONPATH=. python bench/anomaly/record_machine.py --seconds 300 --interval 0.25 \
        --out bench/anomaly/data/machine_raw.csv

Writes long-format CSV `timestamp,metric,value`: cpu_percent (whole machine), mem_used_mb, a cumulative
counter (context switches) and disk_write_kb (cumulative). The recording is committed; `corpus.py`
injects labelled anomalies into it deterministically.
"""

from __future__ import annotations

import argparse
import csv
import time

import psutil


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=300.0)
    ap.add_argument("--interval", type=float, default=0.25)
    ap.add_argument("--out", default="bench/anomaly/data/machine_raw.csv")
    args = ap.parse_args()
    psutil.cpu_percent(None)
    end = time.time() + args.seconds
    with open(args.out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "metric", "value"])
        while time.time() < end:
            time.sleep(args.interval)
            now = round(time.time(), 3)
            io = psutil.disk_io_counters()
            w.writerow([now, "cpu_percent", psutil.cpu_percent(None)])
            w.writerow([now, "mem_used_mb", round(psutil.virtual_memory().used / 2**20, 1)])
            w.writerow([now, "ctx_switches", psutil.cpu_stats().ctx_switches])
            w.writerow([now, "disk_write_kb", (io.write_bytes // 1024) if io else 0])


if __name__ == "__main__":
    main()

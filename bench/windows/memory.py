"""Worker memory with many active series: `python -m bench.windows.memory --series 200000`.

Loads 2 points for each of N series (all in one open 10 s window, so every series has an open window
and counter state), runs the real worker until it has applied them, and prints its peak RSS, the RSS
before the first message, and the difference per series.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from bench.windows.kafka_load import load
from bench.windows.run import make_config, run_worker
from bench.windows.workload import Workload
from watchkeeper.plumbing.broker import free_port, start_broker


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--series", type=int, default=200_000)
    args = ap.parse_args()
    wl = Workload(samples=2 * args.series, series=args.series, series_per_source=500, seconds_per_message=2)
    with tempfile.TemporaryDirectory(prefix="wk-bench-mem-") as d:
        tmp = Path(d)
        port = free_port()
        broker = start_broker("127.0.0.1", port, log_path=tmp / "tansu.log")
        try:
            cfg = make_config(f"127.0.0.1:{port}", tmp)
            asyncio.run(load(cfg.kafka.bootstrap, cfg.kafka.topics.samples, wl.batched()))
            res = run_worker("memory", cfg, tmp, wl.samples + wl.extra_samples, 0)
            stats = (tmp / f"{cfg.worker.app_id}.stats").read_text().split("\n")
            base = int(float(stats[0].split()[3]))
            print(f"| active series | worker peak RSS MiB | RSS before input MiB | bytes per series |\n"
                  f"|---:|---:|---:|---:|\n"
                  f"| {args.series:,} | {res.rss / 2**20:,.0f} | {base / 2**20:,.0f} | "
                  f"{(res.rss - base) / args.series:,.0f} |")
        finally:
            broker.terminate()
            broker.wait(timeout=10)


if __name__ == "__main__":
    main()

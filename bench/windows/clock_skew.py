"""Clock skew (issue 17): 40 sources on 8 partitions, 4 of them with clocks an hour ahead, and one normal
source that first sends a sample a year ahead. Before per-source watermarks, that one sample made every
later sample of its partition late. Expected now, through the real worker: every window of the 36 normal
sources exactly once (exact counts and max, mean to 1e-9, p95 within 1 %), no window of the skewed ones,
and every sample of theirs (and the year-ahead one) dead-lettered with the reason `future`, per source.

    PYTHONPATH=. python -m bench.windows.clock_skew              # 200,000 samples
    PYTHONPATH=. python -m bench.windows.clock_skew --samples 1000000

The event times are recent (the last one two minutes before the run), so that +1 h is ahead of the
processing time (the Kafka record timestamps, set when the messages are loaded) by more than
`windows.max_future` (600 s).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from bench.windows.kafka_load import load, read_all
from bench.windows.run import make_config, run_worker
from bench.windows.verify import expected_windows, refused_by_source, verify
from bench.windows.workload import PARTITIONS, Workload
from watchkeeper.plumbing.broker import free_port, start_broker

SKEWED = (3, 12, 21, 38)  # on partitions 3, 4, 5, 6
FAR_FUTURE = 9  # partition 1: one sample a year ahead, then its normal data


def workload(samples: int) -> Workload:
    wl = Workload(samples=samples)
    return Workload(samples=samples, t0=float((int(time.time()) - wl.seconds - 120) // 10 * 10), skewed=SKEWED,
                    far_future=FAR_FUTURE)


def run(samples: int, workdir: Path) -> bool:
    port = free_port()
    broker = start_broker("127.0.0.1", port, log_path=workdir / "tansu.log")
    try:
        bootstrap = f"127.0.0.1:{port}"
        cfg = make_config(bootstrap, workdir)
        wl = workload(samples)
        messages = wl.batched()
        asyncio.run(load(bootstrap, cfg.kafka.topics.samples, messages))
        values = [v for msgs in messages.values() for _, v in msgs]
        exp = expected_windows(values, sources=wl.expected_sources, until=wl.t0 + wl.seconds + 60)
        res = run_worker("clock skew", cfg, workdir, wl.samples + wl.extra_samples, len(exp))
        verdict = verify(exp, res.agg_values)  # type: ignore[attr-defined]
        dead = asyncio.run(read_all(bootstrap, cfg.kafka.topics.deadletter, 1, idle=3.0))
        refused = refused_by_source([r.value for r in dead])
    finally:
        broker.terminate()
        broker.wait(timeout=10)
    per_skewed = wl.samples // wl.sources + 1  # its data and its marker
    want = {("future", f"host-{s}"): per_skewed for s in SKEWED} | {("future", f"host-{FAR_FUTURE}"): 1}
    print(f"{wl.sources} sources on {PARTITIONS} partitions, {len(SKEWED)} an hour ahead {list(SKEWED)}, "
          f"host-{FAR_FUTURE} sends one sample a year ahead")
    print(f"windows of the {len(wl.expected_sources)} normal sources: {verdict}")
    print("dead-lettered samples by (reason, source):", dict(sorted(refused.items())))
    print(f"throughput {res.rate:,.0f} samples/s from start, {res.steady:,.0f} steady")
    ok = verdict.ok and refused == want
    if refused != want:
        print("expected dead letters:", dict(sorted(want.items())))
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=200_000)
    ap.add_argument("--workdir", help="keep the logs here (default: a temporary directory)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        ok = run(args.samples, workdir)
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

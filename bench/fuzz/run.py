"""Fuzz every ingestion path with generated inputs and report crashes, hangs, 4xx and accepted counts.

    PYTHONPATH=$PWD python -m bench.fuzz.run --inputs 100000 --seed 1

Paths: the push API over HTTP (JSON samples, Pushgateway text with generated paths incl. @base64,
remote_write), and without HTTP remote_write's decoder, the `wk.samples` contract decoder and the worker's
fast decoder (`core.sample_decode`, read only: a disagreement with the contract is reported, not fixed
here). The bar is in `bench/fuzz/harness.py`; the run exits 1 if it is not met and writes every problem's
input to `--out` so it can become a test.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

import orjson

from bench.fuzz.harness import PushTarget, Tally, decode_one
from bench.fuzz.inputs import json_body, push_path, remote_write_body, sample_message, text_body
from watchkeeper.core.series_registry import SeriesRegistry

# Share of inputs per path (HTTP ones are ~10x slower than the direct decoders).
MIX = [("json", 0.25), ("text", 0.15), ("remote_write", 0.15), ("remote_write_decode", 0.15),
       ("sample_message", 0.30)]


async def run(inputs: int, seed: int, spool_dir: Path) -> tuple[Tally, float]:
    rng = random.Random(seed)
    tally = Tally()
    registry = SeriesRegistry()
    kinds = [k for k, _ in MIX]
    weights = [w for _, w in MIX]
    started = time.monotonic()
    async with PushTarget(spool_dir, tally) as target:
        for i in range(inputs):
            kind = rng.choices(kinds, weights)[0]
            if kind == "json":
                await target.send("json", json_body(rng))
            elif kind == "text":
                await target.send("text", text_body(rng), path=push_path(rng))
            elif kind == "remote_write":
                await target.send("remote_write", remote_write_body(rng))
            elif kind == "remote_write_decode":
                decode_one(kind, remote_write_body(rng), registry, tally)
            else:
                decode_one(kind, sample_message(rng), registry, tally)
            if (i + 1) % 10_000 == 0:
                print(f"{i + 1:,} inputs, {time.monotonic() - started:.0f} s, {len(tally.problems)} problems",
                      file=sys.stderr, flush=True)
    return tally, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("bench/fuzz/results.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wk-fuzz-") as tmp:
        tally, seconds = asyncio.run(run(args.inputs, args.seed, Path(tmp) / "spool"))
    crashes = [p for p in tally.problems if not p[1].startswith("hang")]
    hangs = [p for p in tally.problems if p[1].startswith("hang")]
    print(f"\n{sum(tally.inputs.values()):,} inputs (seed {args.seed}) in {seconds:.0f} s; "
          f"slowest input {tally.slowest * 1000:.0f} ms ({tally.slowest_path})\n")
    print("| path | inputs | outcome counts |")
    print("|---|---:|---|")
    for kind, count in sorted(tally.inputs.items()):
        outcomes = ", ".join(f"{o.split(' ', 1)[1]}: {n:,}" for o, n in sorted(tally.outcomes.items())
                             if o.split(" ", 1)[0] == kind)
        print(f"| {kind} | {count:,} | {outcomes} |")
    print(f"\ncrashes {len(crashes)}, hangs {len(hangs)}, accepted samples {tally.accepted_samples:,}, "
          f"spooled samples {tally.spooled_samples:,}, worker-decode disagreements with the contract "
          f"{len(tally.disagreements)}")
    for path, what, data in tally.problems[:20]:
        print(f"  {path}: {what}\n    input: {data[:300]!r}")
    for data in tally.disagreements[:3]:
        print(f"  disagreement: {data[:300]!r}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(orjson.dumps({
        "inputs": dict(tally.inputs), "seed": args.seed, "seconds": round(seconds, 1),
        "outcomes": dict(tally.outcomes), "accepted_samples": tally.accepted_samples,
        "spooled_samples": tally.spooled_samples, "crashes": len(crashes), "hangs": len(hangs),
        "slowest_ms": round(tally.slowest * 1000, 1), "disagreements": len(tally.disagreements),
        # Inputs as latin-1 text (bytes one to one), cut to 1,000 bytes to keep the file small.
        "problems": [{"path": p, "what": w, "input": d[:1000].decode("latin-1")} for p, w, d in tally.problems[:200]],
        "disagreement_examples": [d[:1000].decode("latin-1") for d in tally.disagreements[:20]],
    }, option=orjson.OPT_INDENT_2))
    sys.exit(1 if tally.problems else 0)


if __name__ == "__main__":
    main()

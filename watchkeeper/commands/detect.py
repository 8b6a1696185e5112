"""`watchkeeper detect`: score a `timestamp,value` CSV stream from stdin, one output row per input row.

Streaming: it reads whatever is available on stdin (up to 1 MiB at a time), scores those rows as one
batch, writes and flushes them, then waits for more, so it works on a pipe that stays open and at full
speed on a file. The detectors are causal and batch-invariant, so the scores do not depend on how the
input arrived.

Bad rows (wrong number of fields, unparseable timestamp or value, NaN/inf, blank lines) are never
dropped: they are echoed with an EMPTY anomaly_score, reported on stderr with their line number, and do
not enter the detector's state. ``--strict`` stops at the first one with exit code 1 instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from watchkeeper.core.detectors import DEFAULT_DETECTOR, DETECTORS, Detector, coerce_params, make_detector
from watchkeeper.core.detectors.csv_rows import RowError, is_header, parse_timestamp, parse_value, split_row
from watchkeeper.plumbing.errors import WatchkeeperError

_READ_SIZE = 1 << 20
OUTPUT_HEADER = b"timestamp,value,anomaly_score\n"


def _epilog() -> str:
    lines = ["detectors and their parameters (--param NAME=VALUE):"]
    for name, cls in DETECTORS.items():
        first = (cls.__doc__ or sys.modules[cls.__module__].__doc__ or "").strip().splitlines()[0]
        lines.append(f"  {name}: {first}")
        for key, (typ, default, text) in cls.PARAMS.items():
            lines.append(f"      {key}={default!r} ({typ.__name__}) {text}")
    lines += [
        "",
        "input: CSV 'timestamp,value', header optional; epoch seconds (or ms) or ISO 8601 timestamps.",
        "output: 'timestamp,value,anomaly_score' (header only if the input had one, see --header);",
        "score in [0, 1], calibrated per series: >= 0.99 means rarer than 1 in 100 points of this series.",
        "bad rows are echoed with an empty score and reported on stderr with their line number.",
        "",
        "example:",
        "  printf 'timestamp,value\\n1700000000,1\\n1700000300,1.2\\n' | watchkeeper detect --detector ensemble",
        "  watchkeeper detect --detector robust --param window=120 < cpu.csv > cpu_scored.csv",
    ]
    return "\n".join(lines)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "detect",
        help="score a timestamp,value CSV stream (stdin) for anomalies (stdout)",
        description=__doc__.splitlines()[0] if __doc__ else None,
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--detector", default=DEFAULT_DETECTOR, choices=list(DETECTORS),
                        help=f"detector to run (default {DEFAULT_DETECTOR})")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="detector parameter, repeatable (see below)")
    parser.add_argument("--header", choices=["auto", "always", "never"], default="auto",
                        help="write the output header: if the input had one (auto), always, or never")
    parser.add_argument("--strict", action="store_true", help="stop with exit code 1 at the first bad row")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raw: dict[str, str] = {}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise WatchkeeperError(f"--param {item!r}: expected NAME=VALUE, e.g. --param window=288")
        raw[key.strip()] = value.strip()
    detector = make_detector(args.detector, **coerce_params(args.detector, raw))
    fd = sys.stdin.fileno()
    out = sys.stdout.buffer

    def write(data: bytes) -> None:
        out.write(data)
        out.flush()

    def warn(message: str) -> None:
        print(f"watchkeeper detect: {message}", file=sys.stderr, flush=True)

    try:
        return detect_stream(detector, lambda: os.read(fd, _READ_SIZE), write, warn, args.header, args.strict)
    except BrokenPipeError:
        # the reader went away (`| head`): not an error of ours; silence the flush at exit too
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def detect_stream(detector: Detector, read: Callable[[], bytes], write: Callable[[bytes], None],
                  warn: Callable[[str], None], header: str = "auto", strict: bool = False) -> int:
    """The command's loop, with I/O passed in (tests drive it directly). Returns the exit code."""
    rest = b""
    lineno = 0
    bad = 0
    if header == "always":
        write(OUTPUT_HEADER)
    while True:
        data = read()
        if data:
            lines = (rest + data).split(b"\n")
            rest = lines.pop()
        else:
            lines = [rest] if rest else []
        if lines:
            chunk, n_bad, stop = _score_lines(detector, lines, lineno, header, warn, strict)
            lineno += len(lines)
            bad += n_bad
            if chunk:
                write(chunk)
            if stop:
                return 1
        if not data:
            break
    if bad:
        warn(f"{bad} bad row(s) echoed with an empty anomaly_score (see above)")
    return 0


def _score_lines(detector: Detector, lines: list[bytes], lineno: int, header: str,
                 warn: Callable[[str], None], strict: bool) -> tuple[bytes, int, bool]:
    head = b""
    if lineno == 0 and lines and is_header(lines[0].decode("utf-8", "replace").strip()):
        head = OUTPUT_HEADER if header == "auto" else b""
        lines, lineno = lines[1:], 1
    fast = _fast_rows(detector, lines)
    if fast is not None:
        return head + fast, 0, False
    body, bad, stop = _slow_rows(detector, lines, lineno, warn, strict)
    return head + body, bad, stop


def _fast_rows(detector: Detector, lines: list[bytes]) -> bytes | None:
    """All rows plain numeric `epoch,value`: parse the chunk with numpy. None: use the row-by-row path."""
    if not lines:
        return b""
    joined = b"\n".join(lines).replace(b"\r", b"")
    if b" " in joined or b'"' in joined:
        return None
    parts = joined.replace(b"\n", b",").split(b",")
    if len(parts) != 2 * len(lines):
        return None
    try:
        arr = np.array(parts).astype(np.float64)
    except ValueError:
        return None
    if not np.isfinite(arr).all():
        return None
    ts, vals = arr[0::2], arr[1::2]
    ts = np.where(np.abs(ts) > 1e11, ts / 1000.0, ts)  # epoch milliseconds, as parse_timestamp does
    scores = detector.score_batch(ts, vals).tolist()
    rows = joined.decode().split("\n")  # echoed as given
    return ("\n".join([f"{row},{sc:.10g}" for row, sc in zip(rows, scores, strict=True)]) + "\n").encode()


def _slow_rows(detector: Detector, lines: list[bytes], lineno: int, warn: Callable[[str], None],
               strict: bool) -> tuple[bytes, int, bool]:
    out_ts: list[str] = []
    out_val: list[str] = []
    good: list[int] = []
    ts: list[float] = []
    vals: list[float] = []
    bad = 0
    for k, line in enumerate(lines):
        text = line.decode("utf-8", "replace").strip()
        try:
            if not text:
                raise RowError("blank line")
            t_text, v_text = split_row(text)
            t, v = parse_timestamp(t_text), parse_value(v_text)
        except RowError as exc:
            bad += 1
            warn(f"line {lineno + k + 1}: {exc}; row echoed with an empty anomaly_score")
            if strict:
                return _join(out_ts, out_val, good, ts, vals, detector), bad, True
            fields = text.split(",", 1) if text else ["", ""]
            out_ts.append(_csv_field(fields[0].strip()))
            out_val.append(_csv_field(fields[1].strip()) if len(fields) > 1 else "")
            continue
        good.append(len(out_ts))
        out_ts.append(t_text)
        out_val.append(v_text)
        ts.append(t)
        vals.append(v)
    return _join(out_ts, out_val, good, ts, vals, detector), bad, False


def _join(out_ts: list[str], out_val: list[str], good: list[int], ts: list[float], vals: list[float],
          detector: Detector) -> bytes:
    scores = [""] * len(out_ts)
    if ts:
        scored = detector.score_batch(np.array(ts), np.array(vals))
        for i, s in zip(good, scored.tolist(), strict=True):
            scores[i] = f"{s:.10g}"
    return "".join(f"{t},{v},{s}\n" for t, v, s in zip(out_ts, out_val, scores, strict=True)).encode()


def _csv_field(text: str) -> str:
    """Quote a bad row's field if needed, so the output stays three columns."""
    return '"' + text.replace('"', '""') + '"' if "," in text or '"' in text else text

"""Recompute every window from the raw samples topic and check the worker's aggregates against it:
count and max exact, mean to 1e-9 (relative), p95 within 1 % of the exact rank value (DDSketch's rule:
the value at rank floor(0.95 * (n - 1)))."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import orjson

from bench.windows.workload import MARKER
from watchkeeper.schemas.series_id import format_series_id, series_id


@dataclass
class Expected:
    sid: list[str]
    start: np.ndarray
    count: np.ndarray
    max: np.ndarray
    mean: np.ndarray
    p95: np.ndarray

    def __len__(self) -> int:
        return len(self.sid)


def expected_windows(raw_values: list[bytes], width: float = 10.0, sources: set[str] | None = None,
                     until: float | None = None) -> Expected:
    """The windows of the raw messages (of `sources` only, by the `host` label, and of samples up to
    `until`, when given)."""
    ids: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
    names: list[str] = []
    s_col: list[int] = []
    t_col: list[float] = []
    v_col: list[float] = []

    def index(name: str, labels: dict[str, str]) -> int:
        key = (name, tuple(sorted(labels.items())))
        i = ids.get(key)
        if i is None:
            i = ids[key] = len(names)
            names.append(format_series_id(series_id(name, labels)) if name != MARKER else "")
        return i

    for raw in raw_values:
        m = orjson.loads(raw)
        if sources is not None and {**m.get("labels", {})}.get("host") not in sources:
            continue
        if "series" in m:
            common = m.get("labels", {})
            for b in m["series"]:
                i = index(b["name"], {**common, **b.get("labels", {})})
                s_col.extend([i] * len(b["ts"]))
                t_col.extend(b["ts"])
                v_col.extend(b["values"])
        else:
            s_col.append(index(m["name"], m.get("labels", {})))
            t_col.append(m["ts"])
            v_col.append(m["value"])
    s, t, v = np.asarray(s_col), np.asarray(t_col), np.asarray(v_col, dtype=float)
    keep = np.asarray([names[i] != "" for i in range(len(names))])[s]
    if until is not None:
        keep &= t <= until
    s, t, v = s[keep], t[keep], v[keep]
    k = np.floor(t / width).astype(np.int64)
    order = np.lexsort((v, k, s))
    s, k, v = s[order], k[order], v[order]
    change = np.ones(len(s), dtype=bool)
    change[1:] = (s[1:] != s[:-1]) | (k[1:] != k[:-1])
    starts = np.flatnonzero(change)
    ends = np.append(starts[1:], len(s))
    n = ends - starts
    return Expected(
        sid=[names[i] for i in s[starts].tolist()],
        start=k[starts] * width,
        count=n,
        max=v[ends - 1],
        mean=np.add.reduceat(v, starts) / n,
        p95=v[starts + np.floor(0.95 * (n - 1)).astype(np.int64)],
    )


@dataclass
class Verdict:
    expected: int
    verified: int = 0
    duplicates: int = 0
    missing: int = 0
    unexpected: int = 0
    wrong: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.verified == self.expected and not (self.duplicates or self.unexpected or self.wrong)


def verify(exp: Expected, aggregate_values: list[bytes]) -> Verdict:
    where = {(sid, st): i for i, (sid, st) in enumerate(zip(exp.sid, exp.start.tolist(), strict=True))}
    verdict = Verdict(expected=len(exp))
    seen = np.zeros(len(exp), dtype=bool)
    for raw in aggregate_values:
        a = orjson.loads(raw)
        if a["name"] == MARKER:
            continue
        i = where.get((a["series_id"], a["start"]))
        if i is None:
            verdict.unexpected += 1
            continue
        if seen[i]:
            verdict.duplicates += 1
            continue
        seen[i] = True
        problems = []
        if a["count"] != exp.count[i]:
            problems.append(f"count {a['count']} != {exp.count[i]}")
        if a["max"] != exp.max[i]:
            problems.append(f"max {a['max']} != {exp.max[i]}")
        mean = a["sum"] / a["count"] if a["count"] else float("nan")
        if not abs(mean - exp.mean[i]) <= 1e-9 * max(1.0, abs(exp.mean[i])):
            problems.append(f"mean {mean} != {exp.mean[i]}")
        if not abs(a["p95"] - exp.p95[i]) <= 0.01 * abs(exp.p95[i]) + 1e-12:
            problems.append(f"p95 {a['p95']} not within 1 % of {exp.p95[i]}")
        if problems:
            verdict.wrong += 1
            if len(verdict.examples) < 10:
                verdict.examples.append(f"{a['series_id']}@{a['start']}: " + "; ".join(problems))
        else:
            verdict.verified += 1
    verdict.missing = int((~seen).sum())
    return verdict


def refused_by_source(deadletter_values: list[bytes]) -> dict[tuple[str, str], int]:
    """Samples in the window step's dead letters, by (reason word, source): a refused batch names its
    source. Dead letters are at least once (a restart's replay writes them again), so these are at least
    the refused samples."""
    from watchkeeper.schemas import DeadLetter, decode

    out: dict[tuple[str, str], int] = {}
    for raw in deadletter_values:
        dl = decode(raw, DeadLetter)
        reason = dl.reason.split(":")[0]
        try:
            batch = orjson.loads(dl.original_bytes())
        except orjson.JSONDecodeError:
            continue
        if type(batch) is dict and "series" in batch:
            n = sum(len(b["ts"]) for b in batch["series"])
            key = (reason, str(batch.get("source", "")))
            out[key] = out.get(key, 0) + n
    return out

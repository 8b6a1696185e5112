"""Closed windows as `WindowAggregate` records (plain dicts in the wire shape, built column-wise)."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from core.ddsketch_bins import KEY_OFFSET, NEG_BASE, RELATIVE_ACCURACY, ZERO_CODE
from core.series_registry import SeriesRegistry
from core.windows import ClosedWindows


def aggregate_records(closed: ClosedWindows, registry: SeriesRegistry) -> list[dict[str, Any]]:
    """One dict per window, valid as `schemas.WindowAggregate` (checked in tests), in `closed`'s order."""
    if len(closed) == 0:
        return []
    codes, counts, offsets = closed.bin_codes, closed.bin_counts, closed.bin_offsets
    neg = (codes >= NEG_BASE) & (codes < ZERO_CODE)
    zero = codes == ZERO_CODE
    keys = np.where(neg, codes - NEG_BASE, codes) - KEY_OFFSET
    keys_l, counts_l, neg_l, zero_l = keys.tolist(), counts.tolist(), neg.tolist(), zero.tolist()
    cols = {
        name: getattr(closed, name).tolist()
        for name in ("series", "start", "end", "count", "sum", "min", "max", "last", "increase")
    }
    qs = {f"p{round(q * 100)}": v.tolist() for q, v in closed.quantiles.items()}
    off = offsets.tolist()
    out: list[dict[str, Any]] = []
    for i, s in enumerate(cols["series"]):
        pk: list[int] = []
        pc: list[int] = []
        nk: list[int] = []
        nc: list[int] = []
        z = 0
        for j in range(off[i], off[i + 1]):
            if zero_l[j]:
                z += counts_l[j]
            elif neg_l[j]:
                nk.append(keys_l[j])
                nc.append(counts_l[j])
            else:
                pk.append(keys_l[j])
                pc.append(counts_l[j])
        rec: dict[str, Any] = {
            "v": 1,
            "series_id": registry.id_hex[s],
            "name": registry.names[s],
            "labels": registry.labels[s],
            "kind": registry.kinds[s],
            "start": cols["start"][i],
            "end": cols["end"][i],
            "count": cols["count"][i],
            "sum": cols["sum"][i],
            "min": cols["min"][i],
            "max": cols["max"][i],
            "last": cols["last"][i],
            "increase": cols["increase"][i],
        }
        for name, values in qs.items():
            rec[name] = values[i]
        rec["sketch"] = {
            "relative_accuracy": RELATIVE_ACCURACY,
            "keys": pk,
            "counts": pc,
            "neg_keys": nk,
            "neg_counts": nc,
            "zero": z,
        }
        out.append(rec)
    return out


def aggregate_messages(closed: ClosedWindows, registry: SeriesRegistry) -> list[tuple[bytes, bytes]]:
    """(series id, `WindowAggregate` JSON) per window, in `closed`'s order, formatted without a dict per
    window: the series part of each record is cached in the registry, the numbers are Python's shortest
    round-trip repr (valid JSON for finite floats). Windows with a non-finite number take the dict path.
    Same JSON as `aggregate_records` + orjson (checked in tests)."""
    n = len(closed)
    if n == 0:
        return []
    codes, counts, offsets = closed.bin_codes, closed.bin_counts, closed.bin_offsets
    neg = (codes >= NEG_BASE) & (codes < ZERO_CODE)
    zero = codes == ZERO_CODE
    keys = np.where(neg, codes - NEG_BASE, codes) - KEY_OFFSET
    # Within a window bins are in value order: negatives, then zero, then positives.
    win = np.repeat(np.arange(n), np.diff(offsets))
    n_neg = np.bincount(win[neg], minlength=n)
    n_zero_bins = np.bincount(win[zero], minlength=n)
    zero_count = np.bincount(win[zero], weights=counts[zero], minlength=n).astype(np.int64)
    floats = np.stack([closed.start, closed.end, closed.sum, closed.min, closed.max, closed.last,
                       closed.increase, *closed.quantiles.values()])
    finite = np.isfinite(floats).all(axis=0).tolist()
    # orjson formats every number of a column in one call; splitting its output gives one string each.
    start, end, total, vmin, vmax, last, inc, *qcols = (_texts(row) for row in np.nan_to_num(floats))
    qnames = [f',"p{round(q * 100)}":' for q in closed.quantiles]
    keys_t, counts_t = _texts(keys), _texts(counts)
    off = offsets.tolist()
    pos_at = (offsets[:-1] + n_neg + n_zero_bins).tolist()
    neg_end = (offsets[:-1] + n_neg).tolist()
    count_t, zero_t, series_l = _texts(closed.count), _texts(zero_count), closed.series.tolist()
    prefix = registry.json_prefix
    id_bytes = registry.id_bytes
    sketch_head = f'"sketch":{{"relative_accuracy":{RELATIVE_ACCURACY!r},"keys":['
    dict_path: list[int] = []
    out: list[tuple[bytes, bytes]] = []
    for i in range(n):
        s = series_l[i]
        if not finite[i]:
            dict_path.append(i)
            out.append((id_bytes[s], b""))
            continue
        a, b, p, e = off[i], neg_end[i], pos_at[i], off[i + 1]
        out.append((id_bytes[s], "".join((
            prefix[s], '"start":', start[i], ',"end":', end[i], ',"count":', count_t[i], ',"sum":', total[i],
            ',"min":', vmin[i], ',"max":', vmax[i], ',"last":', last[i], ',"increase":', inc[i],
            *(x for j, name in enumerate(qnames) for x in (name, qcols[j][i])),
            ",", sketch_head, ",".join(keys_t[p:e]), '],"counts":[', ",".join(counts_t[p:e]),
            '],"neg_keys":[', ",".join(keys_t[a:b]), '],"neg_counts":[', ",".join(counts_t[a:b]),
            '],"zero":', zero_t[i], "}}",
        )).encode()))
    if dict_path:
        records = aggregate_records(closed.take(np.asarray(dict_path)), registry)
        for i, rec in zip(dict_path, records, strict=True):
            out[i] = (out[i][0], orjson.dumps(rec))
    return out


def _texts(column: np.ndarray) -> list[str]:
    """The JSON text of each number of a column (orjson's formatting, one call per column)."""
    if len(column) == 0:
        return []
    return orjson.dumps(column, option=orjson.OPT_SERIALIZE_NUMPY).decode()[1:-1].split(",")

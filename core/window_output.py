"""Closed windows as `WindowAggregate` records (plain dicts in the wire shape, built column-wise)."""

from __future__ import annotations

from typing import Any

import numpy as np

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

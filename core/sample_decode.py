"""`wk.samples` values straight into numpy columns: orjson plus the few checks the wire contract needs.

The pydantic models in `schemas.samples` stay the contract; building them per message costs more than
the whole window update, so well-formed messages take this path and anything it is not sure about
(a type it does not expect, an unknown series with odd labels, a wrong length) is handed to the
pydantic decoder, which either accepts it the way the contract does or produces the precise error that
goes to the dead-letter topic. A series already in the registry was validated when it was added, so its
name and labels are not checked again. A series the registry refuses (full) gets its negative index, which
the window engine turns into a `series_limit` dead letter.
"""

from __future__ import annotations

from itertools import chain
from operator import itemgetter
from typing import Any, NamedTuple

import numpy as np
import orjson

from watchkeeper.core.sample_columns import SampleColumns, columns_of
from watchkeeper.core.series_registry import SeriesRegistry
from watchkeeper.schemas.codec import SchemaError, decode_sample_message
from watchkeeper.schemas.label_names import LABEL_NAME, METRIC_NAME

_BATCH_KEYS = frozenset({"v", "source", "labels", "series"})
_BLOCK_KEYS = frozenset({"name", "labels", "kind", "ts", "values"})
_SAMPLE_KEYS = frozenset({"v", "name", "labels", "ts", "value", "kind"})
_KINDS = ("gauge", "counter")
_NAME = METRIC_NAME
_LABEL_NAME_OK = LABEL_NAME.fullmatch
_NUMBER = (float, int)
_INF = float("inf")
_BLOCK_FIELDS = itemgetter("name", "kind", "labels", "ts", "values")
_COUNTER = "counter".__eq__


class OneSample(NamedTuple):
    """A single-sample message, decoded without numpy: for one sample, building arrays costs more than
    everything else the window engine does with it."""

    series: int
    ts: float
    value: float
    counter: bool

    def columns(self) -> SampleColumns:
        return SampleColumns(np.array([self.series], dtype=np.int64), np.array([self.ts]),
                             np.array([self.value]), np.array([self.counter]))


def message_source(raw: bytes, got: SampleColumns | OneSample, registry: SeriesRegistry) -> str:
    """The source of a message without a Kafka key (DESIGN.md, Time): the batch's `source` field, or a
    single sample's `host` or `instance` label; "" if it names none. `got` is `decode_samples(raw, ...)`."""
    if type(got) is OneSample:
        labels = registry.labels[got.series] if got.series >= 0 else registry.refused[-got.series - 1][1]
        return labels.get("host") or labels.get("instance") or ""
    head = orjson.loads(raw)
    return str(head.get("source") or "") if type(head) is dict else ""


def decode_columns(raw: bytes, registry: SeriesRegistry, source: str = "") -> SampleColumns:
    """The samples of one message as columns (new series registered); `SchemaError` if it is invalid."""
    got = decode_samples(raw, registry, source)
    return got.columns() if type(got) is OneSample else got  # type: ignore[return-value]


def decode_samples(raw: bytes, registry: SeriesRegistry, source: str = "") -> SampleColumns | OneSample:
    """`decode_columns`, but a well-formed single-sample message comes back as a `OneSample`."""
    try:
        head = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise SchemaError(f"not JSON: {exc}") from None
    if type(head) is dict and "series" not in head and head.get("v") == 1:
        one = _fast_sample(head, registry)
        if one is not None:
            return one
    else:
        cols = _fast_columns(head, registry)
        if cols is not None:
            return cols
    return columns_of(decode_sample_message(raw, source=source), registry)


def _fast_columns(head: Any, registry: SeriesRegistry) -> SampleColumns | None:
    if type(head) is not dict or head.get("v") != 1:
        return None
    series = head.get("series")
    if type(series) is not list or not head.keys() <= _BATCH_KEYS or type(head.get("source")) is not str:
        return None
    common = head.get("labels", {})
    if type(common) is not dict or (common and not _labels_ok(common)):
        return None
    # Blocks spelled exactly as before (same common labels, name, kind, own labels in the same order) were
    # validated when first seen: one dict lookup finds their series.
    try:
        spelled = registry.spellings.setdefault(tuple(common.items()), {})
    except (AttributeError, TypeError):
        return None
    known = _known_blocks(series, spelled)
    if known is not None:
        return known
    idx: list[int] = []
    lengths: list[int] = []
    counter: list[bool] = []
    ts_flat: list[Any] = []
    values_flat: list[Any] = []
    for block in series:
        if type(block) is not dict or not block.keys() <= _BLOCK_KEYS:
            return None
        ts, values = block.get("ts"), block.get("values")
        if type(ts) is not list or type(values) is not list or len(ts) != len(values):
            return None
        kind = block.get("kind", "gauge")
        labels = block.get("labels", {})
        if type(labels) is not dict:
            return None
        name = block.get("name")
        try:
            key = (name, kind, tuple(labels.items()))
            i = spelled.get(key)
        except TypeError:  # unhashable name or label value: let the contract say what is wrong
            return None
        if i is None:
            i = _series_index(registry, name, {**common, **labels} if common else labels, kind, labels)
            if i is None:
                return None
            if i >= 0:  # a refused series (registry full) is asked again next time
                spelled[key] = i
        idx.append(i)
        lengths.append(len(ts))
        counter.append(kind == "counter")
        ts_flat += ts
        values_flat += values
    ts_arr, values_arr = _floats(ts_flat), _floats(values_flat)
    if ts_arr is None or values_arr is None:
        return None
    n = np.asarray(lengths, dtype=np.int64)
    return SampleColumns(np.repeat(np.asarray(idx, dtype=np.int64), n), ts_arr, values_arr,
                         np.repeat(np.asarray(counter, dtype=bool), n))


def _known_blocks(series: list[Any], spelled: dict[tuple[object, ...], int]) -> SampleColumns | None:
    """The common case column-wise, without a Python loop per block: every block spells all five fields
    (as `SeriesBlock.model_dump` does) and was seen before, so each step is one C-level pass over the
    blocks (`map`) and one numpy call. None when anything differs: the per-block path decides then."""
    try:
        if set(map(len, series)) != {5}:  # with all five fields present: exactly those five
            return None
        names, kinds, labels, ts, values = zip(*map(_BLOCK_FIELDS, series), strict=True)
        found = list(map(spelled.get, zip(names, kinds, map(tuple, map(dict.items, labels)), strict=True)))
    except (KeyError, TypeError, ValueError):  # not dicts, a field missing, unhashable labels
        return None
    if None in found or set(map(type, ts)) != {list} or set(map(type, values)) != {list}:
        return None
    lengths = list(map(len, ts))
    if lengths != list(map(len, values)):
        return None
    if len(set(lengths)) == 1:  # equal lengths (one scrape or push interval per batch): one 2-D array each
        values_arr = _floats_2d(values)
        if ts.count(ts[0]) == len(ts):  # and usually the same times: one column, repeated
            first = _floats(ts[0])
            ts_arr = None if first is None else np.tile(first, len(ts))
        else:
            ts_arr = _floats_2d(ts)
    else:
        ts_arr, values_arr = _floats(list(chain.from_iterable(ts))), _floats(list(chain.from_iterable(values)))
    if ts_arr is None or values_arr is None:
        return None
    n = np.asarray(lengths, dtype=np.int64)
    counter = np.fromiter(map(_COUNTER, kinds), dtype=bool, count=len(kinds))
    return SampleColumns(np.repeat(np.asarray(found, dtype=np.int64), n), ts_arr, values_arr,
                         np.repeat(counter, n))


def _fast_sample(head: dict[str, Any], registry: SeriesRegistry) -> OneSample | None:
    if not head.keys() <= _SAMPLE_KEYS:
        return None
    ts: Any = head.get("ts")
    value: Any = head.get("value")
    if type(ts) not in _NUMBER or type(value) not in _NUMBER or not 0 <= ts < _INF:
        return None
    kind = head.get("kind", "gauge")
    labels = head.get("labels", {})
    i = _series_index(registry, head.get("name"), labels, kind, labels)
    if i is None:
        return None
    return OneSample(i, float(ts), float(value), kind == "counter")


def _series_index(registry: SeriesRegistry, name: Any, labels: Any, kind: Any, own: Any) -> int | None:
    if kind not in _KINDS or type(labels) is not dict or type(own) is not dict:
        return None
    try:
        found = registry.find(name, labels)
    except TypeError:  # unhashable or unsortable labels: let the contract say what is wrong
        return None
    if found is not None:
        return found
    if type(name) is not str or not _NAME.fullmatch(name) or not _labels_ok(labels):
        return None
    return registry.index_of(name, labels, kind)


def _labels_ok(labels: Any) -> bool:
    if type(labels) is not dict:
        return False
    for key, value in labels.items():
        if type(value) is not str or key.startswith("__") or not _LABEL_NAME_OK(key):
            return False
    return True


def _floats_2d(rows: tuple[list[Any], ...]) -> np.ndarray | None:
    """`_floats` of equal-length lists, flattened row after row; None for anything but numbers."""
    try:
        arr = np.array(rows)
    except (ValueError, OverflowError):
        return None
    if arr.ndim != 2:
        return None
    if arr.dtype == np.float64:
        return arr.ravel()
    if arr.dtype == np.int64 or arr.size == 0:
        return arr.astype(np.float64).ravel()
    return None


def _floats(items: list[Any]) -> np.ndarray | None:
    """float64 column of JSON numbers; None when anything else (strings, bools, nulls, huge ints) is in it."""
    try:
        arr = np.array(items)
    except (ValueError, OverflowError):  # nested lists
        return None
    if arr.ndim != 1:
        return None
    if arr.dtype == np.float64:
        return arr
    if arr.dtype == np.int64 or (len(items) == 0):
        return arr.astype(np.float64)
    return None

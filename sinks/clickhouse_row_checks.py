"""Type checks of decoded aggregate, alert and notification rows, as strict as their wire models, at a
fraction of pydantic's cost.

Why not `WindowAggregate.model_validate`: on the aggregates topic (~100k rows/s) it costs ~20 us/row here,
twice the JSON decode itself. These checks read each field once with `type(x) is ...` tests: every row
they accept is valid for its model (`schemas.WindowAggregate`, `AlertEvent`, `NotificationRecord`: tested)
and buildable into its ClickHouse table, and they are stricter where the model coerces or where ClickHouse
cannot hold a value: no strings for numbers, no bools for numbers, integers within their unsigned column,
times within DateTime64's range. A rejected row gets one reason naming the field (`count: ...`,
`labels.host: ...`), in the dotted style pydantic uses.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from operator import itemgetter
from typing import Any

# DateTime64(3, 'UTC') holds 1900-01-01 .. 2299-12-31; outside that ClickHouse stores garbage without error.
MIN_TIME = -2_208_988_800.0
MAX_TIME = 10_413_791_999.0
UINT64_MAX = 2**64 - 1
UINT32_MAX = 2**32 - 1
_HEX16 = re.compile(r"[0-9a-f]{16}")

# A check returns None (fine) or the problem: "expected ..." for the field itself, or ".sub: expected ..."
# for a part of it (a label, a list item), which the caller prefixes with the field's name.
Check = Callable[[Any], str | None]


def _show(x: Any) -> str:
    text = repr(x)
    return text if len(text) <= 40 else text[:37] + "..."


def _str(x: Any) -> str | None:
    return None if type(x) is str else f"expected a string, got {_show(x)}"


def _float(x: Any) -> str | None:
    t = type(x)
    return None if t is float or t is int else f"expected a number, got {_show(x)}"


def _time(x: Any) -> str | None:
    t = type(x)
    if t is not float and t is not int:
        return f"expected a number (seconds since the epoch), got {_show(x)}"
    if not MIN_TIME <= x <= MAX_TIME:
        return f"{_show(x)} is outside ClickHouse DateTime64's range (years 1900 to 2299)"
    return None


def _optional_time(x: Any) -> str | None:
    return None if x is None else _time(x)


def _uint(limit: int) -> Check:
    def check(x: Any) -> str | None:
        if type(x) is not int:
            return f"expected an integer, got {_show(x)}"
        if not 0 <= x <= limit:
            return f"{x} is outside 0..{limit}"
        return None
    check.limit = limit  # type: ignore[attr-defined]  # read by the fast path
    return check


def _one_of(*allowed: Any) -> Check:
    kind = type(allowed[0])

    def check(x: Any) -> str | None:
        return None if type(x) is kind and x in allowed else f"expected one of {list(allowed)}, got {_show(x)}"
    check.allowed = {kind: frozenset(allowed)}  # type: ignore[attr-defined]  # read by the fast path
    return check


def _series_id(x: Any) -> str | None:
    if type(x) is not str or len(x) != 16 or not _HEX16.fullmatch(x):
        return f"expected 16 lowercase hex digits, got {_show(x)}"
    return None


def _str_list(x: Any) -> str | None:
    if type(x) is not list:
        return f"expected a list of strings, got {_show(x)}"
    for i, v in enumerate(x):
        if type(v) is not str:
            return f".{i}: expected a string, got {_show(v)}"
    return None


def _labels(x: Any) -> str | None:
    if type(x) is not dict:
        return f"expected an object of strings, got {_show(x)}"
    for k, v in x.items():
        if type(v) is not str:
            return f".{k}: expected a string, got {_show(v)}"
    return None


def _int_list(x: Any) -> str | None:
    if type(x) is not list:
        return f"expected a list of integers, got {_show(x)}"
    for i, v in enumerate(x):
        if type(v) is not int:
            return f".{i}: expected an integer, got {_show(v)}"
    return None


_SKETCH: dict[str, Check] = {
    "relative_accuracy": _float, "keys": _int_list, "counts": _int_list, "neg_keys": _int_list,
    "neg_counts": _int_list, "zero": lambda x: None if type(x) is int else f"expected an integer, got {_show(x)}",
}


def _sketch(x: Any) -> str | None:
    if type(x) is not dict:
        return f"expected an object (SketchBins), got {_show(x)}"
    problem = _fields(x, _SKETCH, frozenset())
    return None if problem is None else "." + problem


# (field -> check), the required fields; every other field of the model may be absent (its default).
_AGGREGATE: dict[str, Check] = {
    "v": _one_of(1), "series_id": _series_id, "name": _str, "labels": _labels, "kind": _one_of("gauge", "counter"),
    "start": _time, "end": _time, "count": _uint(UINT64_MAX), "sum": _float, "min": _float, "max": _float,
    "last": _float, "increase": _float, "p50": _float, "p90": _float, "p95": _float, "p99": _float,
    "sketch": _sketch,
}
_AGGREGATE_REQUIRED = frozenset(("series_id", "name", "labels", "start", "end", "count", "sum", "min", "max",
                                 "last", "p50", "p90", "p95", "p99", "sketch"))
_ALERT: dict[str, Check] = {
    "v": _one_of(1), "fingerprint": _str, "rule": _str, "state": _one_of("pending", "firing", "resolved"),
    "severity": _str, "labels": _labels, "annotations": _labels, "value": _float, "starts_at": _time,
    "ends_at": _optional_time, "event_time": _time, "source": _one_of("rule", "anomaly", "slo", "probe"),
    "generator_url": _str,
}
_ALERT_REQUIRED = frozenset(("fingerprint", "rule", "state", "starts_at", "event_time"))
_NOTIFICATION: dict[str, Check] = {
    "v": _one_of(1), "notification_id": _str, "receiver": _str, "integration": _str, "group_key": _str,
    "status": _one_of("sent", "failed", "retrying", "silenced", "inhibited", "deduplicated"),
    "attempt": _uint(UINT32_MAX), "error": _str, "latency_ms": _float, "time": _time, "alerts": _str_list,
    "firing": _uint(UINT32_MAX), "resolved": _uint(UINT32_MAX),
}
_NOTIFICATION_REQUIRED = frozenset(("notification_id", "receiver", "integration", "group_key", "status", "time"))

MODELS: dict[str, tuple[str, dict[str, Check], frozenset[str]]] = {
    "aggregates": ("WindowAggregate", _AGGREGATE, _AGGREGATE_REQUIRED),
    "alerts": ("AlertEvent", _ALERT, _ALERT_REQUIRED),
    "notifications": ("NotificationRecord", _NOTIFICATION, _NOTIFICATION_REQUIRED),
}


def _fields(obj: dict[str, Any], checks: dict[str, Check], required: frozenset[str]) -> str | None:
    for key, value in obj.items():
        check = checks.get(key)
        if check is None:
            return f"{key}: extra field not permitted"
        problem = check(value)
        if problem is not None:
            return f"{key}{problem}" if problem[0] == "." else f"{key}: {problem}"
    if len(obj) < len(checks) or not required.issubset(obj):
        missing = sorted(required.difference(obj))
        if missing:
            also = f" (also missing: {', '.join(missing[1:])})" if missing[1:] else ""
            return f"{missing[0]}: field required{also}"
    return None


_STR = frozenset((str,))
_INT = frozenset((int,))


class _Absent:
    """Stands for a field the row does not have, in the fast path's type signature."""


_ABSENT = _Absent()
_EMPTY_LIST: list[Any] = []


def _labels_ok(x: Any) -> bool:
    return set(map(type, x.values())) <= _STR


def _str_list_ok(x: Any) -> bool:
    return set(map(type, x)) <= _STR


def _series_id_ok(x: Any) -> bool:
    return len(x) == 16 and _HEX16.fullmatch(x) is not None


def _sketch_ok(x: Any) -> bool:
    get = x.get
    keys, counts = get("keys", _EMPTY_LIST), get("counts", _EMPTY_LIST)
    neg_keys, neg_counts = get("neg_keys", _EMPTY_LIST), get("neg_counts", _EMPTY_LIST)
    return (x.keys() <= _SKETCH_KEYS and type(keys) is list and type(counts) is list and type(neg_keys) is list
            and type(neg_counts) is list and set(map(type, keys + counts + neg_keys + neg_counts)) <= _INT
            and type(get("zero", 0)) is int and type(get("relative_accuracy", 0.0)) in _NUM_TYPES)


_SKETCH_KEYS = frozenset(("relative_accuracy", "keys", "counts", "neg_keys", "neg_counts", "zero"))
_NUM_TYPES = (float, int)


def _within(limit: int) -> Callable[[Any], bool]:
    return lambda x: 0 <= x <= limit


def _time_ok(x: Any) -> bool:
    return MIN_TIME <= x <= MAX_TIME


def _optional_time_ok(x: Any) -> bool:
    return x is None or MIN_TIME <= x <= MAX_TIME


class _FastCheck:
    """The per-field checks' verdict for the common case, in a few C-level calls per row; a no falls back
    to the per-field checks for the reason. One `map` reads every field's type into a tuple (absent fields
    as `_Absent`); a tuple once found acceptable is remembered, so keys and types cost one dict lookup.
    Then only values whose type is not enough are looked at: time ranges, unsigned ranges, allowed words,
    label values, list items. Built from the per-field table, so the two cannot drift apart (and a property
    test holds them equal)."""

    def __init__(self, checks: dict[str, Check], required: frozenset[str]) -> None:
        self.checks = checks
        self.required = required
        self.fields = tuple(checks)
        self.absent = (_ABSENT,) * len(self.fields)
        self.good: dict[tuple[type, ...], int] = {}  # acceptable type signature -> fields present
        times = tuple(k for k in self.fields if checks[k] is _time and k in required)
        self.times = itemgetter(*times) if len(times) > 1 else None
        self.values: list[tuple[str, Callable[[Any], bool]]] = []
        for k, check in checks.items():
            if check is _time and self.times is None:
                self.values.append((k, _time_ok))
            elif check is _optional_time:
                self.values.append((k, _optional_time_ok))
            elif check is _labels:
                self.values.append((k, _labels_ok))
            elif check is _str_list:
                self.values.append((k, _str_list_ok))
            elif check is _series_id:
                self.values.append((k, _series_id_ok))
            elif check is _sketch:
                self.values.append((k, _sketch_ok))
            elif hasattr(check, "limit"):
                self.values.append((k, _within(check.limit)))
            elif hasattr(check, "allowed"):
                self.values.append((k, next(iter(check.allowed.values())).__contains__))

    def _signature_ok(self, sig: tuple[type, ...]) -> int:
        """Fields present if every field's type in `sig` can pass its check, else -1 (then remembered)."""
        present = 0
        for k, t in zip(self.fields, sig, strict=True):
            if t is _Absent:
                if k in self.required:
                    return -1
                continue
            present += 1
            if t not in _types_of(self.checks[k]):
                return -1
        if len(self.good) < 4096:
            self.good[sig] = present
        return present

    def __call__(self, obj: dict[str, Any]) -> bool:
        get = obj.get
        sig = tuple(map(type, map(get, self.fields, self.absent)))
        present = self.good.get(sig)
        if present is None:
            present = self._signature_ok(sig)
        if present != len(obj):  # a required field missing, a type wrong, or a field the model lacks
            return False
        if self.times is not None:
            ts = self.times(obj)
            if min(ts) < MIN_TIME or max(ts) > MAX_TIME:
                return False
        for k, ok in self.values:
            x = get(k, _ABSENT)
            if x is not _ABSENT and not ok(x):
                return False
        return True


# The types a check can pass at all (literal checks add their own through `allowed`).
_TYPES: dict[Check, frozenset[type]] = {
    _str: _STR, _float: frozenset((float, int)), _time: frozenset((float, int)),
    _optional_time: frozenset((float, int, type(None))), _series_id: _STR, _str_list: frozenset((list,)),
    _labels: frozenset((dict,)), _sketch: frozenset((dict,)),
}
def _types_of(check: Check) -> frozenset[type] | dict[type, Any]:
    if hasattr(check, "allowed"):
        return check.allowed
    if hasattr(check, "limit"):
        return _INT
    return _TYPES[check]


_FAST = {table: _FastCheck(checks, required) for table, (_, checks, required) in MODELS.items()}


def row_problem(table: str, obj: Any) -> str | None:
    """Why `obj` (a decoded JSON message of `table`'s topic) cannot be stored, or None when it can."""
    if type(obj) is dict and _FAST[table](obj):
        return None
    return detailed_problem(table, obj)


def detailed_problem(table: str, obj: Any) -> str | None:
    """`row_problem` by the per-field checks alone (the reasons; and the reference the fast path is held to)."""
    model, checks, required = MODELS[table]
    if type(obj) is not dict:
        return f"invalid {model}: expected a JSON object, got {type(obj).__name__}"
    problem = _fields(obj, checks, required)
    return None if problem is None else f"invalid {model}: {problem}"

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

# What an absent optional field stands for (the model's default), for the fast path's `obj.get`.
DEFAULTS: dict[str, dict[str, Any]] = {
    "aggregates": {"v": 1, "kind": "gauge", "increase": 0.0},
    "alerts": {"v": 1, "severity": "", "value": 0.0, "ends_at": None, "source": "rule", "generator_url": ""},
    "notifications": {"v": 1, "attempt": 1, "error": "", "latency_ms": 0.0, "firing": 0, "resolved": 0},
}
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


_NUM = frozenset((float, int))
_INT = frozenset((int,))
_STR = frozenset((str,))


class _FastCheck:
    """The same verdict as the per-field checks for the common case, in a handful of C-level calls per row
    (`map(type, ...)` into a set, itemwise `obj.get` with defaults): it only says yes or no, and a no
    falls back to the per-field checks for the reason. Field groups are read off the per-field table, so
    the two cannot drift apart (and a property test holds them equal)."""

    def __init__(self, checks: dict[str, Check], required: frozenset[str], defaults: dict[str, Any]) -> None:
        def group(kind: Check) -> tuple[tuple[str, ...], tuple[Any, ...]]:
            keys = tuple(k for k, c in checks.items() if c is kind)
            return keys, tuple(defaults.get(k) for k in keys)

        self.allowed = frozenset(checks)
        self.required = required
        self.strs = group(_str)
        self.floats = group(_float)
        self.times = group(_time)
        self.labels = tuple(k for k, c in checks.items() if c is _labels)
        self.literals = tuple((k, c.allowed, defaults.get(k)) for k, c in checks.items()
                              if hasattr(c, "allowed"))
        self.uints = tuple((k, c.limit, defaults.get(k)) for k, c in checks.items()
                           if hasattr(c, "limit"))
        handled = {*self.strs[0], *self.floats[0], *self.times[0], *self.labels,
                   *(k for k, _, _ in self.literals), *(k for k, _, _ in self.uints)}
        self.others = tuple((k, checks[k]) for k in checks if k not in handled)

    def __call__(self, obj: dict[str, Any]) -> bool:
        keys = obj.keys()
        if not (keys == self.allowed or (self.required <= keys and keys <= self.allowed)):
            return False
        get = obj.get
        if not set(map(type, map(get, *self.strs))) <= _STR or not set(map(type, map(get, *self.floats))) <= _NUM:
            return False
        times: list[Any] = list(map(get, *self.times))
        if not set(map(type, times)) <= _NUM or min(times) < MIN_TIME or max(times) > MAX_TIME:
            return False
        for k in self.labels:
            d = get(k, _EMPTY)
            if type(d) is not dict or not set(map(type, d.values())) <= _STR:
                return False
        for k, allowed, default in self.literals:
            x = get(k, default)
            if type(x) not in allowed or x not in allowed[type(x)]:
                return False
        for k, limit, default in self.uints:
            x = get(k, default)
            if type(x) is not int or not 0 <= x <= limit:
                return False
        for k, check in self.others:
            if k in obj and (_FAST_OTHERS.get(check) or check)(obj[k]) is not None:
                return False
        return True


_SKETCH_LISTS = ("keys", "counts", "neg_keys", "neg_counts")
_SKETCH_KEYS = frozenset(_SKETCH)


def _sketch_fast(x: Any) -> str | None:
    """`_sketch`'s verdict without its reasons (those come from `_sketch` when this says no)."""
    if type(x) is not dict or not x.keys() <= _SKETCH_KEYS:
        return "no"
    for k in _SKETCH_LISTS:
        v = x.get(k, _EMPTY_LIST)
        if type(v) is not list or not set(map(type, v)) <= _INT:
            return "no"
    return None if type(x.get("zero", 0)) is int and type(x.get("relative_accuracy", 0.0)) in _NUM else "no"


_EMPTY_LIST: list[int] = []
_FAST_OTHERS: dict[Check, Check] = {_sketch: _sketch_fast}


_EMPTY: dict[str, str] = {}
_FAST = {table: _FastCheck(checks, required, DEFAULTS[table]) for table, (_, checks, required) in MODELS.items()}


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

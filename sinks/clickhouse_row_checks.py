"""Checks of decoded aggregate, alert and notification rows against their wire models, before the sink
buffers them, so a wrongly typed row is dead-lettered with the field's name instead of failing a batch.

The models are validated in pydantic's strict mode: no strings for numbers, no bools or 3.0 for
integers, which the Arrow builders could not take anyway (lax mode would let `"count": "3"` through to
fail later without a useful reason). On top, what the ClickHouse columns cannot hold although the model
allows it: integers beyond their unsigned column (`count: -1` into UInt64) and times outside DateTime64's
range, which ClickHouse would store as garbage without an error.

Cost (bench/sink/take_throughput.py): about as much as the JSON decode before it. A hand-written type
check was tried first and was not faster than pydantic-core here, so the contract itself is the check.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from watchkeeper.schemas import AlertEvent, NotificationRecord, WindowAggregate

# DateTime64(3, 'UTC') holds 1900-01-01 .. 2299-12-31; outside that ClickHouse stores garbage without error.
MIN_TIME = -2_208_988_800.0
MAX_TIME = 10_413_791_999.0
UINT64_MAX = 2**64 - 1
UINT32_MAX = 2**32 - 1

MODELS: dict[str, type[BaseModel]] = {
    "aggregates": WindowAggregate,
    "alerts": AlertEvent,
    "notifications": NotificationRecord,
}
# Fields whose ClickHouse column is narrower than the model's type.
_UNSIGNED: dict[str, tuple[tuple[str, int], ...]] = {
    "aggregates": (("count", UINT64_MAX),),
    "alerts": (),
    "notifications": (("attempt", UINT32_MAX), ("firing", UINT32_MAX), ("resolved", UINT32_MAX)),
}
_TIMES: dict[str, tuple[str, ...]] = {
    "aggregates": ("start", "end"),
    "alerts": ("starts_at", "ends_at", "event_time"),
    "notifications": ("time",),
}
_VALIDATE = {table: model.__pydantic_validator__.validate_python for table, model in MODELS.items()}


def row_problem(table: str, obj: Any) -> str | None:
    """Why `obj` (a decoded JSON message of `table`'s topic) cannot be stored, or None when it can.

    The reason names the field the way pydantic does (`count: ...`, `labels.host: ...`).
    """
    name = MODELS[table].__name__
    try:
        row = _VALIDATE[table](obj, strict=True)
    except ValidationError as exc:
        return f"invalid {name}: {describe(exc)}"
    for field, limit in _UNSIGNED[table]:
        value = getattr(row, field)
        if not 0 <= value <= limit:
            return f"invalid {name}: {field}: {value} is outside the column's range 0..{limit}"
    for field in _TIMES[table]:
        value = getattr(row, field)
        if value is not None and not MIN_TIME <= value <= MAX_TIME:
            return f"invalid {name}: {field}: {value} is outside ClickHouse DateTime64's range (years 1900 to 2299)"
    return None


def _show(x: Any) -> str:
    text = repr(x)
    return text if len(text) <= 40 else text[:37] + "..."


def describe(exc: ValidationError, limit: int = 3) -> str:
    """`field.sub: message` for the first `limit` errors, the way the other decoders word them."""
    parts = []
    for err in exc.errors()[:limit]:
        where = ".".join(str(p) for p in err["loc"]) or "(root)"
        got = "" if err["type"] == "missing" else f", got {_show(err['input'])}"
        parts.append(f"{where}: {err['msg']}{got}")
    more = f" (+{exc.error_count() - limit} more)" if exc.error_count() > limit else ""
    return "; ".join(parts) + more

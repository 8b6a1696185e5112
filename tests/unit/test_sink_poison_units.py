"""The ClickHouse sink's pure defences against bad rows: the checks on the way in (strict wire models
plus the ClickHouse columns' ranges, held to the real Arrow builders), the row-by-row build fallback, and
the bisection that tells a bad row from an outage (with a fake insert function: only the splitting logic
is tested here; the real thing against chDB is tests/integration/test_sink_poison_rows.py)."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from watchkeeper.schemas import AlertEvent, NotificationRecord, WindowAggregate
from watchkeeper.sinks.clickhouse_row_checks import row_problem
from watchkeeper.sinks.clickhouse_rows import aggregates_table, alerts_table, notifications_table
from watchkeeper.sinks.clickhouse_sink import build_rows
from watchkeeper.sinks.insert_bisection import error_kind, insert_bisecting

AGG: dict[str, Any] = {
    "v": 1, "series_id": "00ff00ff00ff00ff", "name": "m", "labels": {"host": "a"}, "kind": "counter",
    "start": 1_790_000_000.0, "end": 1_790_000_010.0, "count": 3, "sum": 6.0, "min": 1.0, "max": 3.0, "last": 2.0,
    "increase": 1.0, "p50": 2.0, "p90": 3.0, "p95": 3.0, "p99": 3.0,
    "sketch": {"relative_accuracy": 0.01, "keys": [0, 5], "counts": [1, 2], "neg_keys": [], "neg_counts": [],
               "zero": 0},
}
ALERT: dict[str, Any] = {
    "v": 1, "fingerprint": "abc", "rule": "R", "state": "firing", "severity": "high", "labels": {"a": "b"},
    "annotations": {}, "value": 1.5, "starts_at": 1_790_000_000.0, "ends_at": None, "event_time": 1_790_000_001.0,
    "source": "rule", "generator_url": "",
}
NOTE: dict[str, Any] = {
    "v": 1, "notification_id": "n1", "receiver": "ops", "integration": "webhook", "group_key": "{}:{}",
    "status": "sent", "attempt": 1, "error": "", "latency_ms": 3.5, "time": 1_790_000_000.0, "alerts": ["abc"],
    "firing": 1, "resolved": 0,
}
CASES: dict[str, tuple[dict[str, Any], type[BaseModel], Any]] = {
    "aggregates": (AGG, WindowAggregate, aggregates_table),
    "alerts": (ALERT, AlertEvent, alerts_table),
    "notifications": (NOTE, NotificationRecord, notifications_table),
}


@pytest.mark.parametrize("table", list(CASES))
def test_valid_rows_and_their_minimal_forms_pass(table: str) -> None:
    row, model, _ = CASES[table]
    assert row_problem(table, row) is None
    minimal = model.model_validate(row).model_dump(mode="json", exclude_defaults=True)
    assert row_problem(table, minimal) is None  # absent optional fields take the model's defaults


@pytest.mark.parametrize(("table", "change", "reason"), [
    ("aggregates", {"count": "x"}, "invalid WindowAggregate: count: Input should be a valid integer, got 'x'"),
    ("aggregates", {"count": "3"}, "count: Input should be a valid integer, got '3'"),  # strict: no coercion
    ("aggregates", {"count": 3.0}, "count: Input should be a valid integer"),
    ("aggregates", {"count": -1}, "count: -1 is outside the column's range 0..18446744073709551615"),
    ("aggregates", {"count": True}, "count: Input should be a valid integer, got True"),
    ("aggregates", {"labels": [1]}, "labels: Input should be a valid dictionary"),
    ("aggregates", {"labels": {"host": 1}}, "labels.host: Input should be a valid string, got 1"),
    ("aggregates", {"start": "yesterday"}, "start: Input should be a valid number, got 'yesterday'"),
    ("aggregates", {"end": 1e13}, "end: 10000000000000.0 is outside ClickHouse DateTime64's range"),
    ("aggregates", {"series_id": "00FF00FF00FF00FF"}, "series_id: String should match pattern"),
    ("aggregates", {"kind": "histogram"}, "kind: Input should be 'gauge' or 'counter'"),
    ("aggregates", {"sum": None}, "sum: Input should be a valid number, got None"),
    ("aggregates", {"sketch": {"keys": [1, "2"]}}, "sketch.keys.1: Input should be a valid integer, got '2'"),
    ("aggregates", {"sketch": {"bins": []}}, "sketch.bins: Extra inputs are not permitted"),
    ("aggregates", {"extra": 1}, "extra: Extra inputs are not permitted"),
    ("aggregates", {"v": 2}, "v: Input should be 1"),
    ("alerts", {"state": 5}, "invalid AlertEvent: state: Input should be 'pending', 'firing' or 'resolved', got 5"),
    ("alerts", {"ends_at": "soon"}, "ends_at: Input should be a valid number, got 'soon'"),
    ("alerts", {"annotations": {"summary": None}}, "annotations.summary: Input should be a valid string, got None"),
    ("alerts", {"source": "cron"}, "source: Input should be"),
    ("notifications", {"alerts": ["a", 2]}, "invalid NotificationRecord: alerts.1: Input should be a valid string"),
    ("notifications", {"attempt": 2**32}, "attempt: 4294967296 is outside the column's range 0..4294967295"),
    ("notifications", {"status": "lost"}, "status: Input should be"),
])
def test_bad_rows_get_a_reason_naming_the_field(table: str, change: dict[str, Any], reason: str) -> None:
    row = {**CASES[table][0], **change}
    problem = row_problem(table, row)
    assert problem is not None and reason in problem, problem


@pytest.mark.parametrize("table", list(CASES))
def test_missing_fields_and_non_objects_are_named(table: str) -> None:
    row = CASES[table][0]
    required = sorted(k for k, f in CASES[table][1].model_fields.items() if f.is_required())
    problem = row_problem(table, {k: v for k, v in row.items() if k != required[0]})
    assert problem == f"invalid {CASES[table][1].__name__}: {required[0]}: Field required"
    problem = row_problem(table, [row])
    assert problem is not None and problem.startswith(f"invalid {CASES[table][1].__name__}: (root): Input should be")


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**65), 2**65) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5) | st.sampled_from(["firing", "gauge", "sent", "00ff00ff00ff00ff", 1_790_000_000.0]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6,
)


@st.composite
def mutated_rows(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A valid row with one to three fields (or a field's part) replaced, removed or added."""
    table = draw(st.sampled_from(list(CASES)))
    row = copy.deepcopy(CASES[table][0])
    for _ in range(draw(st.integers(1, 3))):
        target = row
        key = draw(st.sampled_from(sorted(row)))
        if isinstance(row[key], dict) and row[key] and draw(st.booleans()):
            target, key = row[key], draw(st.sampled_from(sorted(row[key])))
        action = draw(st.sampled_from(["replace", "remove", "add"]))
        if action == "replace":
            target[key] = draw(JSON_VALUES)
        elif action == "remove":
            target.pop(key, None)
        else:
            target[draw(st.text(min_size=1, max_size=4))] = draw(JSON_VALUES)
    return table, row


@settings(max_examples=400, deadline=None)
@given(mutated_rows())
def test_accepted_rows_are_valid_for_the_model_and_build(case: tuple[str, dict[str, Any]]) -> None:
    table, row = case
    _, model, build = CASES[table]
    problem = row_problem(table, row)
    try:
        model.model_validate(row, strict=True)
        strict_ok = True
    except ValidationError:
        strict_ok = False
    if problem is None:
        assert strict_ok
        assert build([row]).num_rows == 1
    try:
        model.model_validate(row)
    except ValidationError:
        assert problem is not None  # never laxer than the model


def test_rows_the_builder_cannot_take_are_found_one_by_one() -> None:
    bad = {**AGG, "labels": [1]}  # as if it had slipped past the checks
    good, failed = build_rows(aggregates_table, [AGG, bad, {**AGG, "count": 5}])
    assert good is not None and good[0] == [0, 2] and good[1].column("count").to_pylist() == [3, 5]
    assert [i for i, _ in failed] == [1] and "items" in str(failed[0][1])
    nothing, all_bad = build_rows(aggregates_table, [bad, bad])
    assert nothing is None and [i for i, _ in all_bad] == [0, 1]


def _data_error() -> Exception:
    return DatabaseError("Code: 469. Constraint violated", code=469, name="VIOLATED_CONSTRAINT")


def test_error_kinds() -> None:
    assert error_kind(_data_error()) == "data"
    assert error_kind(DatabaseError("Code: 60. no table", code=60, name="UNKNOWN_TABLE")) == "outage"
    assert error_kind(OperationalError("connection refused")) == "outage"
    assert error_kind(DatabaseError("no detail")) == "outage"  # no ClickHouse code: nothing said about the data
    assert error_kind(DatabaseError("Code: 999. ?", code=999)) == "unknown"
    assert error_kind(ValueError("client-side conversion")) == "unknown"


class FakeClickHouse:
    """Rejects any part holding a poison row with `poison_error`; every insert fails while `down`."""

    def __init__(self, n: int, poison: set[int], poison_error: Any = _data_error, down: bool = False,
                 down_after: int | None = None) -> None:
        self.rows = [0] * n
        self.poison, self.poison_error, self.down, self.down_after = poison, poison_error, down, down_after
        self.calls = 0

    async def insert(self, lo: int, hi: int) -> None:
        self.calls += 1
        if self.down or (self.down_after is not None and self.calls > self.down_after):
            raise DatabaseError("Code: 60. no table", code=60)
        if self.poison & set(range(lo, hi)):
            raise self.poison_error()
        for i in range(lo, hi):
            self.rows[i] += 1


def _bisect(fake: FakeClickHouse, first: Exception) -> Any:
    return asyncio.run(insert_bisecting(len(fake.rows), fake.insert, first))


@pytest.mark.parametrize("poison", [{0}, {7}, {15}, {3, 4, 11}, set(range(0, 16, 2))])
def test_poison_rows_are_rejected_and_every_other_row_inserted_once(poison: set[int]) -> None:
    fake = FakeClickHouse(16, poison)
    out = _bisect(fake, _data_error())
    assert [i for i, _ in out.rejected] == sorted(poison) and not out.pending and out.outage is None
    assert fake.rows == [0 if i in poison else 1 for i in range(16)]
    assert out.inserted == 16 - len(poison)


def test_unknown_errors_count_as_bad_data_only_when_another_part_succeeded() -> None:
    fake = FakeClickHouse(8, {5}, poison_error=lambda: DatabaseError("Code: 999. ?", code=999))
    out = _bisect(fake, DatabaseError("Code: 999. ?", code=999))
    assert [i for i, _ in out.rejected] == [5] and not out.pending
    alone = FakeClickHouse(1, {0}, poison_error=lambda: DatabaseError("Code: 999. ?", code=999))
    out = _bisect(alone, DatabaseError("Code: 999. ?", code=999))
    assert not out.rejected and out.pending == [(0, 1)] and out.outage is not None  # every part failed
    everything = FakeClickHouse(4, {0, 1, 2, 3}, poison_error=lambda: DatabaseError("Code: 999. ?", code=999))
    out = _bisect(everything, DatabaseError("Code: 999. ?", code=999))
    assert not out.rejected and out.pending == [(0, 1), (1, 2), (2, 3), (3, 4)] and everything.rows == [0] * 4


def test_a_lone_row_with_a_data_error_is_rejected_even_though_nothing_succeeded() -> None:
    out = _bisect(FakeClickHouse(1, {0}), _data_error())
    assert [i for i, _ in out.rejected] == [0] and not out.pending


def test_an_outage_stops_at_once_and_keeps_every_row() -> None:
    fake = FakeClickHouse(1000, set(), down=True)
    out = _bisect(fake, DatabaseError("Code: 60. no table", code=60))
    assert fake.calls == 0 and out.pending == [(0, 1000)] and not out.rejected and out.inserted == 0
    fake = FakeClickHouse(16, {9}, down_after=3)  # goes down half way through the bisection
    out = _bisect(fake, _data_error())
    inserted = [i for i, c in enumerate(fake.rows) if c]
    pending = [i for lo, hi in out.pending for i in range(lo, hi)]
    rejected = [i for i, _ in out.rejected]
    assert sorted(inserted + pending + rejected) == list(range(16))  # each row in exactly one place
    assert max(fake.rows) == 1 and 9 not in inserted and out.outage is not None

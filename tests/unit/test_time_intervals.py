"""Alertmanager's own `timeinterval` test cases, run as data from
tests/fixtures/alertmanager/timeinterval_cases.yaml, plus the route stages built on them."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from watchkeeper.core.notify.time_intervals import (
    Range,
    TimeInterval,
    TimeIntervalError,
    TimeIntervals,
    TimeRange,
    parse_time_interval,
    parse_time_intervals,
    route_muted_by,
)

CASES = yaml.safe_load((Path(__file__).parents[1] / "fixtures/alertmanager/timeinterval_cases.yaml").read_text())


def rfc822z(text: str) -> datetime:
    """Go's time.RFC822Z layout, "02 Jan 06 15:04 -0700"."""
    return datetime.strptime(text, "%d %b %y %H:%M %z")


def from_struct(s: dict[str, Any]) -> TimeInterval:
    def ranges(key: str) -> tuple[Range, ...] | None:
        return None if key not in s else tuple(Range(a, b) for a, b in s[key])
    return TimeInterval(
        times=None if "times" not in s else tuple(TimeRange(a, b) for a, b in s["times"]),
        weekdays=ranges("weekdays"), days_of_month=ranges("days_of_month"), months=ranges("months"),
        years=ranges("years"), location=s.get("location"))


def ids(cases: list[dict[str, Any]]) -> list[str]:
    return [str(i) for i in range(len(cases))]


@pytest.mark.parametrize("case", CASES["contains_time"], ids=ids(CASES["contains_time"]))
def test_contains_time(case: dict[str, Any]) -> None:
    ti = from_struct(case["struct"])
    for t in case["valid"]:
        assert ti.contains(rfc822z(t)), t
        assert ti.contains(rfc822z(t).timestamp()), t
    for t in case["invalid"]:
        assert not ti.contains(rfc822z(t)), t


@pytest.mark.parametrize("case", CASES["time_strings"], ids=ids(CASES["time_strings"]))
def test_parse_time_string(case: dict[str, Any]) -> None:
    if case["range"] is None:
        with pytest.raises(TimeIntervalError):
            parse_time_interval({"times": [case["in"]]})
    else:
        assert parse_time_interval({"times": [case["in"]]}).times == (TimeRange(*case["range"]),)


@pytest.mark.parametrize("case", CASES["yaml_unmarshal"], ids=ids(CASES["yaml_unmarshal"]))
def test_yaml_unmarshal(case: dict[str, Any]) -> None:
    data = yaml.safe_load(case["in"])
    if "err" in case:
        with pytest.raises(TimeIntervalError) as exc:
            parse_time_intervals(data)
        assert exc.value.message == case["err"]
        return
    got = parse_time_intervals(data)
    assert got == [from_struct(s) for s in case["intervals"]]
    for t in case.get("contains", []):
        assert any(ti.contains(rfc822z(t)) for ti in got), t
    for t in case.get("excludes", []):
        assert not any(ti.contains(rfc822z(t)) for ti in got), t


@pytest.mark.parametrize("case", CASES["complete"], ids=ids(CASES["complete"]))
def test_time_interval_complete(case: dict[str, Any]) -> None:
    ti = parse_time_interval(yaml.safe_load(case["in"]))
    for t in case.get("contains", []):
        assert ti.contains(rfc822z(t)), t
    for t in case.get("excludes", []):
        assert not ti.contains(rfc822z(t)), t


INTERVENER = CASES["intervener"]


@pytest.mark.parametrize("case", INTERVENER["cases"], ids=[c["name"] for c in INTERVENER["cases"]])
def test_intervener_mutes(case: dict[str, Any]) -> None:
    intervals = TimeIntervals({n: [from_struct(s) for s in v] for n, v in INTERVENER["intervals"].items()})
    now = datetime.fromisoformat(case["now"])
    assert intervals.matching(sorted(INTERVENER["intervals"]), now) == case["muted_by"]
    assert intervals.matching(sorted(INTERVENER["intervals"]), now.timestamp()) == case["muted_by"]


# Beyond Alertmanager's file: the route stages (TimeActiveStage then TimeMuteStage) and edge cases.

SUNDAY_NIGHT = TimeIntervals({
    "sunday-maintenance": parse_time_intervals([{"weekdays": ["sunday"],
                                                 "times": [{"start_time": "02:00", "end_time": "04:00"}]}]),
    "business-hours": parse_time_intervals([{"weekdays": ["monday:friday"],
                                             "times": [{"start_time": "09:00", "end_time": "17:00"}],
                                             "location": "Europe/Berlin"}]),
})


@pytest.mark.parametrize(("now", "mute", "active", "muted_by"), [
    ("2026-12-06T02:00:00+00:00", ["sunday-maintenance"], [], ["sunday-maintenance"]),  # start inclusive
    ("2026-12-06T03:59:59+00:00", ["sunday-maintenance"], [], ["sunday-maintenance"]),
    ("2026-12-06T04:00:00+00:00", ["sunday-maintenance"], [], []),  # end exclusive
    ("2026-12-06T01:59:59+00:00", ["sunday-maintenance"], [], []),
    ("2026-12-07T08:30:00+00:00", [], ["business-hours"], []),  # 09:30 in Berlin: active
    ("2026-12-07T07:30:00+00:00", [], ["business-hours"], ["business-hours"]),  # 08:30 in Berlin
    ("2026-12-06T12:00:00+00:00", [], ["business-hours"], ["business-hours"]),  # Sunday
    ("2026-12-06T02:30:00+00:00", ["sunday-maintenance"], ["business-hours"], ["business-hours"]),
])
def test_route_muted_by(now: str, mute: list[str], active: list[str], muted_by: list[str]) -> None:
    assert route_muted_by(SUNDAY_NIGHT, mute, active, datetime.fromisoformat(now)) == muted_by


def test_active_lists_every_interval_containing_now() -> None:
    assert SUNDAY_NIGHT.active(datetime.fromisoformat("2026-12-06T02:30:00+00:00")) == ["sunday-maintenance"]
    assert SUNDAY_NIGHT.active(datetime.fromisoformat("2026-12-07T10:00:00+00:00")) == ["business-hours"]


def test_empty_list_matches_nothing_absent_matches_everything() -> None:
    """yaml.v2 decodes `weekdays: []` to a non-nil empty slice, which ContainsTime treats as no match."""
    t = datetime.fromisoformat("2026-12-06T02:30:00+00:00")
    assert parse_time_interval({"weekdays": []}).contains(t) is False
    assert parse_time_interval({"weekdays": None}).contains(t) is True


@pytest.mark.parametrize(("data", "loc", "message"), [
    ({"location": "Mars/Olympus_Mons"}, ("location",), "unknown time zone Mars/Olympus_Mons"),
    ({"weekday": ["monday"]}, ("weekday",), "field weekday not found in type timeinterval.TimeInterval"),
    ({"years": ["2020:2021:2022"]}, ("years", 0), "couldn't parse range 2020:2021:2022, invalid format"),
    ({"times": [{"start_time": "9:00", "end_time": "17:00"}]}, ("times", 0),
     "couldn't parse timestamp 9:00, invalid format"),
])
def test_refused_with_the_field(data: dict[str, Any], loc: tuple[str | int, ...], message: str) -> None:
    with pytest.raises(TimeIntervalError) as exc:
        parse_time_interval(data)
    assert (exc.value.loc, exc.value.message) == (loc, message)


def test_numbers_read_as_yaml_v2_reads_them() -> None:
    """Unquoted numbers (`days_of_month: [1, -1]`, `years: [2026]`) are read as their text, as Go does."""
    ti = parse_time_interval({"days_of_month": [1, "-3:-1"], "years": [2026], "months": [12]})
    assert ti.days_of_month == (Range(1, 1), Range(-3, -1))
    assert ti.contains(datetime.fromisoformat("2026-12-29T00:00:00+00:00"))
    assert not ti.contains(datetime.fromisoformat("2026-12-02T00:00:00+00:00"))


def test_local_is_the_hosts_zone_at_the_instant_given(monkeypatch: pytest.MonkeyPatch) -> None:
    """Go's `location: Local`: the host's zone, daylight saving as of the instant tested (not of today)."""
    import time

    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        [office] = parse_time_intervals([{"times": [{"start_time": "09:00", "end_time": "17:00"}],
                                          "location": "Local"}])
        winter_9am, summer_9am = 1704981600.0, 1720789200.0  # 2024-01-11 and 2024-07-12, 09:00 in New York
        assert office.contains(winter_9am) and office.contains(summer_9am)
        assert not office.contains(winter_9am - 60) and not office.contains(summer_9am - 60)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()

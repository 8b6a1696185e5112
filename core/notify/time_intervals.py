"""Alertmanager's time intervals (`time_intervals`, the older `mute_time_intervals`), unchanged: the
parsing rules, the error messages and the containment test of its `timeinterval` package
(prometheus/alertmanager `timeinterval/timeinterval.go`, Apache-2.0), so a config that mutes "every
Sunday 02:00-04:00" there mutes the same minutes here.

Semantics kept exactly:
- `times`: minutes of the day, start inclusive, end exclusive (`00:00`-`24:00` is the whole day).
- `weekdays`, `days_of_month`, `months`, `years`: inclusive ranges `a:b` or single values.
- `days_of_month` may count from the end (`-1` is the last day); ranges are clamped to the month, and a
  range that starts after the month's last day never matches (`30:31` in February).
- every field present must match (an empty list matches nothing); an absent field matches everything.
- `location`: an IANA zone the time is converted to first (UTC when absent).

Pure: the time to test is an argument (epoch seconds or an aware datetime)."""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from watchkeeper.core.errors import CoreError

Loc = tuple[str | int, ...]

DAYS_OF_WEEK = {"sunday": 0, "monday": 1, "tuesday": 2, "wednesday": 3, "thursday": 4, "friday": 5,
                "saturday": 6}
MONTHS = {name: i for i, name in enumerate(("january", "february", "march", "april", "may", "june", "july",
                                            "august", "september", "october", "november", "december"), 1)}
_MONTHS_INV = {i: name for name, i in MONTHS.items()}
_VALID_TIME = re.compile(r"^((([01][0-9])|(2[0-3])):[0-5][0-9])\Z|(^24:00\Z)")  # Go's $ is \Z
_GO_ATOI = re.compile(r"^[+-]?[0-9]+\Z")


class TimeIntervalError(CoreError):
    """A time interval that Alertmanager would refuse; `loc` is the path inside the interval list."""

    def __init__(self, loc: Loc, message: str) -> None:
        super().__init__(message)
        self.loc, self.message = loc, message


@dataclass(frozen=True)
class TimeRange:
    """Minutes of the day, `start` inclusive, `end` exclusive (0..1440)."""

    start: int
    end: int


@dataclass(frozen=True)
class Range:
    """An inclusive range of weekdays (0 = Sunday), days of month (negative from the end), months or years."""

    begin: int
    end: int


@dataclass(frozen=True)
class TimeInterval:
    """One entry of a named interval's `time_intervals` list. `None`: the field is absent (any value)."""

    times: tuple[TimeRange, ...] | None = None
    weekdays: tuple[Range, ...] | None = None
    days_of_month: tuple[Range, ...] | None = None
    months: tuple[Range, ...] | None = None
    years: tuple[Range, ...] | None = None
    location: str | None = None

    def contains(self, t: float | datetime) -> bool:
        """Alertmanager's `TimeInterval.ContainsTime`."""
        if isinstance(t, datetime):
            if t.tzinfo is None:
                raise ValueError("a naive datetime has no instant: give it a tzinfo")
            dt = t.astimezone(_zone(self.location))
        else:
            dt = datetime.fromtimestamp(t, UTC).astimezone(_zone(self.location))
        if self.times is not None:
            minute = dt.hour * 60 + dt.minute
            if not any(r.start <= minute < r.end for r in self.times):
                return False
        if self.days_of_month is not None:
            dim = calendar.monthrange(dt.year, dt.month)[1]
            if not any(_day_in(r, dt.day, dim) for r in self.days_of_month):
                return False
        if self.months is not None and not any(r.begin <= dt.month <= r.end for r in self.months):
            return False
        if self.weekdays is not None:
            weekday = (dt.weekday() + 1) % 7  # Go counts from Sunday = 0, Python from Monday = 0
            if not any(r.begin <= weekday <= r.end for r in self.weekdays):
                return False
        return self.years is None or any(r.begin <= dt.year <= r.end for r in self.years)


def _day_in(r: Range, day: int, dim: int) -> bool:
    begin = dim + r.begin + 1 if r.begin < 0 else r.begin
    end = dim + r.end + 1 if r.end < 0 else r.end
    if begin > dim:  # a range starting after the month's end is not clamped back into it
        return False
    begin = max(-dim, min(begin, dim))
    end = max(-dim, min(end, dim))
    return begin <= day <= end


_ZONES: dict[str, tzinfo] = {"UTC": UTC}


def _zone(name: str | None) -> tzinfo | None:
    """The zone to convert to; None is Go's `Local` (the host's zone), which `astimezone(None)` applies at
    the instant given, daylight saving included, without reading the clock."""
    if name is None:
        return UTC
    if name == "Local":
        return None
    z = _ZONES.get(name)
    if z is None:
        z = _ZONES[name] = ZoneInfo(name)
    return z


class TimeIntervals:
    """The named intervals of a config: Alertmanager's `Intervener`."""

    def __init__(self, intervals: Mapping[str, Sequence[TimeInterval]]) -> None:
        self.intervals = dict(intervals)

    def __contains__(self, name: object) -> bool:
        return name in self.intervals

    def matching(self, names: Sequence[str], now: float | datetime) -> list[str]:
        """The names (in the order given) with an interval containing `now` (Intervener.Mutes)."""
        out = []
        for name in names:
            try:
                intervals = self.intervals[name]
            except KeyError:
                raise KeyError(f"time interval {name} doesn't exist in config") from None
            out += [name for ti in intervals if ti.contains(now)]
        return out

    def active(self, now: float | datetime) -> list[str]:
        """Every named interval containing `now` (what the dashboard shows)."""
        return sorted({n for n in self.intervals if self.matching([n], now)})


def route_muted_by(intervals: TimeIntervals, mute: Sequence[str], active: Sequence[str],
                   now: float | datetime) -> list[str]:
    """Why a route's notifications are held at `now`, after Alertmanager's TimeActiveStage then
    TimeMuteStage: outside every `active_time_intervals` entry the route is muted by all of them; inside
    any `mute_time_intervals` entry it is muted by those. Empty: not muted."""
    if active and not intervals.matching(active, now):
        return list(active)
    return intervals.matching(mute, now) if mute else []


def parse_time_intervals(data: Any) -> list[TimeInterval]:
    """A named interval's `time_intervals:` list, validated as Alertmanager's YAML unmarshalling does."""
    if data is None:
        return []
    if not isinstance(data, list):
        raise TimeIntervalError((), "expected a list of time intervals")
    return [parse_time_interval(item, (i,)) for i, item in enumerate(data)]


_FIELDS = ("times", "weekdays", "days_of_month", "months", "years", "location")


def parse_time_interval(data: Any, loc: Loc = ()) -> TimeInterval:
    if data is None:
        return TimeInterval()
    if not isinstance(data, dict):
        raise TimeIntervalError(loc, "expected a mapping of times, weekdays, days_of_month, months, years, location")
    for key in data:
        if key not in _FIELDS:
            raise TimeIntervalError((*loc, str(key)), f"field {key} not found in type timeinterval.TimeInterval")
    location = data.get("location")
    if location is not None:
        if not isinstance(location, str):
            raise TimeIntervalError((*loc, "location"), "location must be a string such as Europe/Berlin")
        try:
            _zone(location)
        except (ZoneInfoNotFoundError, ValueError):
            raise TimeIntervalError((*loc, "location"), f"unknown time zone {location}") from None
    return TimeInterval(
        times=_list(data, "times", loc, _time_range),
        weekdays=_list(data, "weekdays", loc, _weekdays),
        days_of_month=_list(data, "days_of_month", loc, _days_of_month),
        months=_list(data, "months", loc, _months),
        years=_list(data, "years", loc, _years),
        location=location,
    )


def _list(data: dict[str, Any], key: str, loc: Loc, parse: Any) -> Any:
    if key not in data or data[key] is None:
        return None
    items = data[key]
    if not isinstance(items, list):
        raise TimeIntervalError((*loc, key), f"{key} must be a list")
    out = []
    for i, item in enumerate(items):
        try:
            out.append(parse(item))
        except ValueError as exc:
            raise TimeIntervalError((*loc, key, i), str(exc)) from None
    return tuple(out)


def _scalar(value: Any) -> str:
    """Go's yaml.v2 decodes any scalar into a string field as its text; a mapping or list is an error."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise ValueError(f"expected a string, got {type(value).__name__}")


def _atoi(text: str) -> int:
    if not _GO_ATOI.match(text):
        raise ValueError(f'strconv.Atoi: parsing "{text}": invalid syntax')
    return int(text)


def _split(text: str, member: Any) -> Range:
    """stringableRangeFromString: `a:b` or `a`, lower-cased."""
    text = text.lower()
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 2:
            raise ValueError(f"couldn't parse range {text}, invalid format")
        return Range(member(parts[0]), member(parts[1]))
    v = member(text)
    return Range(v, v)


def _weekday(text: str) -> int:
    if text not in DAYS_OF_WEEK:
        raise ValueError(f"{text} is not a valid weekday")
    return DAYS_OF_WEEK[text]


def _month(text: str) -> int:
    if text in MONTHS:
        return MONTHS[text]
    try:
        return _atoi(text)
    except ValueError:
        raise ValueError(f"{text} is not a valid month") from None


def _weekdays(value: Any) -> Range:
    text = _scalar(value)
    r = _split(text, _weekday)
    if r.begin > r.end:
        raise ValueError("start day cannot be before end day")
    if not (0 <= r.begin <= 6 and 0 <= r.end <= 6):
        raise ValueError(f"{text} is not a valid day of the week: out of range")
    return r


def _days_of_month(value: Any) -> Range:
    r = _split(_scalar(value), _atoi)
    for v in (r.begin, r.end):
        if v == 0 or v < -31 or v > 31:
            raise ValueError(f"{v} is not a valid day of the month: out of range")
    if r.begin < 0 < r.end:
        raise ValueError("end day must be negative if start day is negative")
    # Only the always-wrong cases can be caught without knowing the month (28 days at least).
    check_begin = 28 + r.begin if r.begin < 0 else r.begin
    check_end = 28 + r.end if r.end < 0 else r.end
    if check_begin > check_end:
        raise ValueError(f"end day {r.end} is always before start day {r.begin}")
    return r


def _months(value: Any) -> Range:
    r = _split(_scalar(value), _month)
    if r.begin > r.end:
        raise ValueError(f"end month {_MONTHS_INV.get(r.end, '')} is before start month "
                         f"{_MONTHS_INV.get(r.begin, '')}")
    return r


def _years(value: Any) -> Range:
    r = _split(_scalar(value), _atoi)
    if r.begin > r.end:
        raise ValueError(f"end year {r.end} is before start year {r.begin}")
    return r


def _minutes(text: str) -> int:
    if not _VALID_TIME.search(text):
        raise ValueError(f"couldn't parse timestamp {text}, invalid format")
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def _time_range(value: Any) -> TimeRange:
    if not isinstance(value, dict):
        raise ValueError("expected start_time and end_time")
    for key in value:
        if key not in ("start_time", "end_time"):
            raise ValueError(f"field {key} not found in type timeinterval.yamlTimeRange")
    start, end = value.get("start_time") or "", value.get("end_time") or ""
    if not start or not end:
        raise ValueError("both start and end times must be provided")
    s, e = _minutes(_scalar(start)), _minutes(_scalar(end))
    if s >= e:
        raise ValueError("start time cannot be equal or greater than end time")
    return TimeRange(s, e)

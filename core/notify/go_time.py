"""Go's time values as notification templates see them: a `time.Time` (printing, `.Format`, `.Unix`,
`date` and `tz`) and a `time.Duration` (what `since` returns, printed as Go prints it: `1h2m3.5s`).
Layouts are Go's reference-time layouts (`2006-01-02 15:04:05 MST`), not strftime."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from watchkeeper.core.rules.templates import TemplateError

_LAYOUT = re.compile(
    r"January|Jan|Monday|Mon|MST|2006|-07:00:00|-0700|-07:00|-07|Z07:00:00|Z0700|Z07:00|Z07"
    r"|[.,](?:0+|9+)(?!\d)|01|02|_2|15|03|04|05|06|002|__2|PM|pm|1|2|3|4|5")
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


class GoTime(datetime):
    """A `time.Time`: prints as Go's Time.String(), has the methods templates call."""

    GO_METHODS = ("Format", "Unix", "UnixMilli", "UTC", "Local", "Add", "IsZero", "Year", "Day", "Hour", "Minute",
                  "Second")

    @classmethod
    def of(cls, t: datetime) -> GoTime:
        return cls(t.year, t.month, t.day, t.hour, t.minute, t.second, t.microsecond, tzinfo=t.tzinfo or UTC)

    def go_string(self) -> str:
        frac = f".{self.microsecond:06d}".rstrip("0") if self.microsecond else ""
        zone = f" {_offset(self, False)} {_zone_name(self)}"
        return f"{self.year:04d}-" + self.strftime("%m-%d %H:%M:%S") + frac + zone

    def Format(self, layout: str) -> str:  # Go's method names, as templates call them
        return go_format(self, str(layout))

    def Unix(self) -> int:
        return int(_since_epoch(self) // timedelta(seconds=1))

    def UnixMilli(self) -> int:
        return int(_since_epoch(self) // timedelta(milliseconds=1))

    def UTC(self) -> GoTime:
        return GoTime.of(self.astimezone(UTC))

    def Local(self) -> GoTime:
        """The process's local zone (TZ), as Go's Local."""
        return GoTime.of(self.astimezone())

    def Add(self, nanoseconds: float) -> GoTime:
        """time.Add: community templates shift to a zone with `.StartsAt.Add 28800e9`."""
        return GoTime.of(self + timedelta(microseconds=int(nanoseconds) // 1000))

    def IsZero(self) -> bool:
        return self.astimezone(UTC).replace(tzinfo=None) == datetime(1, 1, 1)

    def Year(self) -> int:
        return self.year

    def Day(self) -> int:
        return self.day

    def Hour(self) -> int:
        return self.hour

    def Minute(self) -> int:
        return self.minute

    def Second(self) -> int:
        return self.second


class GoDuration(float):
    """A `time.Duration` in seconds; prints as Go does (`72h3m0.5s`, `1.5ms`, `0s`)."""

    GO_METHODS = ("Seconds", "Minutes", "Hours", "String")

    def go_string(self) -> str:
        return go_duration(float(self))

    def __str__(self) -> str:
        return self.go_string()

    def Seconds(self) -> float:
        return float(self)

    def Minutes(self) -> float:
        return float(self) / 60

    def Hours(self) -> float:
        return float(self) / 3600

    def String(self) -> str:
        return self.go_string()


def _since_epoch(t: datetime) -> timedelta:
    return t.astimezone(UTC).replace(tzinfo=None) - datetime(1970, 1, 1)


def go_duration(seconds: float) -> str:
    """time.Duration.String() (nanosecond resolution)."""
    ns = round(seconds * 1e9)
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000_000_000:
        for unit, size in (("ns", 1), ("µs", 1_000), ("ms", 1_000_000)):
            if ns < size * 1000:
                return sign + _trim(ns / size if size > 1 else ns, size) + unit
    whole, frac = divmod(ns, 1_000_000_000)
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    sec = str(s) + (f".{frac:09d}".rstrip("0") if frac else "")
    out = f"{m}m{sec}s" if h == 0 else f"{h}h{m}m{sec}s"
    return sign + (out if m or h else f"{sec}s")


def _trim(value: float, size: int) -> str:
    if size == 1:
        return str(int(value))
    digits = len(str(size)) - 1
    return f"{value:.{digits}f}".rstrip("0").rstrip(".")


def _zone_name(t: datetime) -> str:
    """Go's zone abbreviation; a fixed offset read from RFC 3339 has none, and Go prints `+0200`."""
    if isinstance(t.tzinfo, timezone) and t.utcoffset():
        return _offset(t, False)
    return t.tzname() or "UTC"


def _offset(t: datetime, colon: bool, seconds: bool = False, zulu: bool = False, short: bool = False) -> str:
    off = t.utcoffset() or timedelta(0)
    if zulu and not off:
        return "Z"
    total = int(off.total_seconds())
    sign = "-" if total < 0 else "+"
    total = abs(total)
    hh, mm, ss = total // 3600, (total // 60) % 60, total % 60
    if short:
        return f"{sign}{hh:02d}"
    sep = ":" if colon else ""
    return f"{sign}{hh:02d}{sep}{mm:02d}" + (f"{sep}{ss:02d}" if seconds else "")


def go_format(t: datetime, layout: str) -> str:
    """time.Time.Format with a Go layout."""
    def one(m: re.Match[str]) -> str:
        tok = m.group(0)
        hour12 = t.hour % 12 or 12
        simple = {
            "January": _MONTHS[t.month - 1], "Jan": _MONTHS[t.month - 1][:3], "Monday": _DAYS[t.weekday()],
            "Mon": _DAYS[t.weekday()][:3], "MST": _zone_name(t), "2006": f"{t.year:04d}",
            "06": f"{t.year % 100:02d}", "01": f"{t.month:02d}", "1": str(t.month), "02": f"{t.day:02d}",
            "2": str(t.day), "_2": f"{t.day:>2}", "15": f"{t.hour:02d}", "03": f"{hour12:02d}", "3": str(hour12),
            "04": f"{t.minute:02d}", "4": str(t.minute), "05": f"{t.second:02d}", "5": str(t.second),
            "PM": "PM" if t.hour >= 12 else "AM", "pm": "pm" if t.hour >= 12 else "am",
            "002": f"{t.timetuple().tm_yday:03d}", "__2": f"{t.timetuple().tm_yday:>3}",
            "-0700": _offset(t, False), "-07:00": _offset(t, True), "-07": _offset(t, False, short=True),
            "-07:00:00": _offset(t, True, True), "Z0700": _offset(t, False, zulu=True),
            "Z07:00": _offset(t, True, zulu=True), "Z07": _offset(t, False, zulu=True, short=True),
            "Z07:00:00": _offset(t, True, True, zulu=True),
        }
        if tok in simple:
            return simple[tok]
        digits = f"{t.microsecond:06d}000"[:len(tok) - 1]  # fractional seconds, ,000 or .999
        if tok[1] == "9":
            digits = digits.rstrip("0")
            return tok[0] + digits if digits else ""
        return tok[0] + digits
    return _LAYOUT.sub(one, layout)


def go_tz(name: str, t: datetime) -> GoTime:
    """Alertmanager's `tz`: the same instant in the named IANA location."""
    try:
        zone = UTC if name in ("", "UTC") else ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        raise TemplateError(f"unknown time zone {name}") from None
    return GoTime.of(t.astimezone(zone))


def zero_time() -> GoTime:
    return GoTime(1, 1, 1, tzinfo=UTC)


def parse_rfc3339(text: str) -> GoTime:
    """An RFC 3339 time from JSON (Alertmanager's webhook form), nanoseconds cut to microseconds."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text)
    if m is None:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    base = datetime.fromisoformat(m.group(1) + (m.group(3).replace("Z", "+00:00")))
    frac = int((m.group(2) or "0")[:6].ljust(6, "0"))
    return GoTime.of(base.replace(microsecond=frac))

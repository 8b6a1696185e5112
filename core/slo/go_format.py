"""Number and duration text exactly as Sloth (Go) prints them, so generated rules match Sloth's byte for byte.

Go prints a float64 in templates (`%v`) and with `%g` as the shortest round-trip digits, switching to
exponent form when the exponent is below -4 or at least 6 (`1e+06`, `1e-05`). Python's `repr` uses the same
shortest digits but other thresholds, so the digits are reused and the layout redone here.
"""

from __future__ import annotations

from decimal import Decimal


def go_float(value: float) -> str:
    """`fmt.Sprintf("%v", value)` of a float64 in Go."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "0"
    sign, digit_tuple, exponent = Decimal(repr(float(value))).normalize().as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(str(d) for d in digit_tuple)
    # Position of the decimal point relative to the digit string, and the scientific exponent.
    point = len(digits) + exponent
    sci_exp = point - 1
    prefix = "-" if sign else ""
    if sci_exp < -4 or sci_exp >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if sci_exp < 0 else '+'}{abs(sci_exp):02d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return prefix + digits + "0" * (point - len(digits))
    return f"{prefix}{digits[:point]}.{digits[point:]}"


def go_float_fixed(value: float) -> str:
    """`strconv.FormatFloat(value, 'f', -1, 64)`: shortest digits, never an exponent."""
    text = format(Decimal(repr(float(value))), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


_UNITS = (
    ("y", 365 * 86400_000, True),
    ("w", 7 * 86400_000, True),
    ("d", 86400_000, False),
    ("h", 3600_000, False),
    ("m", 60_000, False),
    ("s", 1000, False),
    ("ms", 1, False),
)


def prom_duration(seconds: float) -> str:
    """Prometheus' `model.Duration.String()`: `5m`, `1h`, `30d`, `4w` (weeks and years only when exact)."""
    ms = round(seconds * 1000)
    if ms == 0:
        return "0s"
    out = ""
    for unit, mult, exact in _UNITS:
        if exact and ms % mult != 0:
            continue
        if (count := ms // mult) > 0:
            out += f"{count}{unit}"
            ms -= count * mult
    return out


def parse_prom_duration(text: str) -> float:
    """Seconds in a Prometheus duration such as `30d`, `1h30m`, `4w`; ValueError if it is not one."""
    import re

    if not text or not re.fullmatch(r"(\d+(ms|y|w|d|h|m|s))+", text):
        raise ValueError(f"not a Prometheus duration: {text!r} (use e.g. 30d, 4w, 1h30m)")
    total = 0.0
    for count, unit in re.findall(r"(\d+)(ms|y|w|d|h|m|s)", text):
        total += int(count) * {u: m for u, m, _ in _UNITS}[unit] / 1000
    return total

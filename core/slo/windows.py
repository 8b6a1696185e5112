"""The multi-window, multi-burn-rate alert windows of the Google SRE workbook, as Sloth ships them.

Sloth's `internal/alert/windows/google-30d.yaml` and `google-28d.yaml`: page when 2 % of the budget burns in
1 h (checked over 5 m too) or 5 % in 6 h (30 m); ticket when 10 % burns in 1 d (2 h) or 10 % in 3 d (6 h).
The burn-rate factor is the speed that consumes that share of the budget in the long window.
"""

from __future__ import annotations

from dataclasses import dataclass

MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0


@dataclass(frozen=True)
class BurnWindow:
    """One alert condition: burn `budget_percent` of the period's budget within `long` (confirmed over `short`)."""

    budget_percent: float
    short: float
    long: float

    def factor(self, period: float) -> float:
        """Sloth's `getBurnRateFactor`, with the same float operations so the printed numbers match."""
        hours_required = self.budget_percent * (period / HOUR) / 100
        return hours_required / (self.long / HOUR)


@dataclass(frozen=True)
class AlertWindows:
    period: float
    page_quick: BurnWindow
    page_slow: BurnWindow
    ticket_quick: BurnWindow
    ticket_slow: BurnWindow

    def all_windows(self) -> list[float]:
        """Every distinct window the alerts read, ascending (Sloth's `getAlertGroupWindows`)."""
        burns = (self.page_quick, self.page_slow, self.ticket_quick, self.ticket_slow)
        ws = {w for b in burns for w in (b.short, b.long)}
        return sorted(ws)


def google_windows(period: float) -> AlertWindows:
    """The workbook's recommended windows for a 30 d or 28 d SLO period (the two Sloth supports by default)."""
    if period not in (30 * DAY, 28 * DAY):
        raise ValueError("the SLO period must be 30d or 28d (the windows Sloth ships)")
    return AlertWindows(
        period=period,
        page_quick=BurnWindow(2, 5 * MINUTE, 1 * HOUR),
        page_slow=BurnWindow(5, 30 * MINUTE, 6 * HOUR),
        ticket_quick=BurnWindow(10, 2 * HOUR, 1 * DAY),
        ticket_slow=BurnWindow(10, 6 * HOUR, 3 * DAY),
    )

"""The web dashboard: status, alerts, silences, SLO budgets and charts of any series, read from ClickHouse."""

from watchkeeper.dashboard.app import DashboardSettings, create_dashboard_app

__all__ = ["DashboardSettings", "create_dashboard_app"]

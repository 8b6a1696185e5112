"""The web dashboard: status, alerts, silences, SLO budgets and charts of any series, read from ClickHouse."""

from watchkeeper.dashboard.app import create_dashboard_app

__all__ = ["create_dashboard_app"]

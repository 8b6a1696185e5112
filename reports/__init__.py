"""Reports from ClickHouse: SLO attainment and budgets, trends, capacity forecasts (Markdown or HTML with charts)."""

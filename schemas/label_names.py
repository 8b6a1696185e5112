"""Prometheus' label-name and metric-name rules, in one place for every reader of names (rule files, SLO specs,
anomaly rules, Alertmanager files, PromQL, the sample schemas, the push API, remote_write and scrapes): ASCII
letters, digits and underscores (and colons in metric names), not starting with a digit. ASCII only: `str.isalpha`
would let `é` or `ǅ` through.

`fullmatch`, never `^...$` with `match`, whose `$` also accepts a trailing newline.
"""

from __future__ import annotations

import re

LABEL_NAME_SYNTAX = r"[a-zA-Z_][a-zA-Z0-9_]*"
METRIC_NAME_SYNTAX = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL_NAME = re.compile(LABEL_NAME_SYNTAX)
METRIC_NAME = re.compile(METRIC_NAME_SYNTAX)


def is_label_name(name: str) -> bool:
    return LABEL_NAME.fullmatch(name) is not None


def is_metric_name(name: str) -> bool:
    return METRIC_NAME.fullmatch(name) is not None

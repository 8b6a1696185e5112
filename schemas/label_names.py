"""Prometheus' label-name rule, in one place for every reader of labels (rule files, SLO specs, anomaly rules,
PromQL, the push API, remote_write and scrapes): ASCII letters, digits and underscores, not starting with a digit.

`fullmatch`, never `^...$` with `match`, whose `$` also accepts a trailing newline.
"""

from __future__ import annotations

import re

LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def is_label_name(name: str) -> bool:
    return LABEL_NAME.fullmatch(name) is not None

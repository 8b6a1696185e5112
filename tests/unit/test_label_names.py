"""One label-name rule for every reader of labels (schemas/label_names.py)."""

from __future__ import annotations

import pytest

from watchkeeper.schemas.label_names import is_label_name


@pytest.mark.parametrize("name", ["job", "_x", "a1", "__name__", "A_b_9"])
def test_prometheus_label_names_pass(name: str) -> None:
    assert is_label_name(name)


# "job\n" passed the old `^...$` + `match` copies (a `$` accepts a trailing newline): a counterexample kept.
@pytest.mark.parametrize("name", ["", "1a", "a-b", "a.b", "job\n", "é", "a b", "a:b"])
def test_anything_else_is_refused(name: str) -> None:
    assert not is_label_name(name)

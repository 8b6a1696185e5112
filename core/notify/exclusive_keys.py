"""Alertmanager's rules for keys that exclude each other, mostly a value given inline or read from a file
(`url` / `url_file`): at most one of the two, or, where the value is required, exactly one. Written once, with
the messages of prometheus/common's and Alertmanager's UnmarshalYAML, for every receiver and kind."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def at_most_one_of(values: Mapping[str, Any], a: str, b: str, what: str = "") -> None:
    """Refuse `values` setting both `a` and `b`; `what` ("oauth2 ") says whose keys they are."""
    if values.get(a) and values.get(b):
        raise ValueError(f"at most one of {what}{a} & {b} must be configured")


def one_of(values: Mapping[str, Any], a: str, b: str) -> None:
    """Refuse `values` setting neither or both of `a` and `b`."""
    if not (values.get(a) or values.get(b)):
        raise ValueError(f"one of {a} or {b} must be configured")
    at_most_one_of(values, a, b)

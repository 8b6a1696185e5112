"""Parsing `detect` input rows: the timestamp formats users have, and errors that say what is wrong."""

from __future__ import annotations

import pytest

from watchkeeper.core.detectors.csv_rows import RowError, is_header, parse_timestamp, parse_value, split_row


@pytest.mark.parametrize(("text", "epoch"), [
    ("1700000000", 1_700_000_000.0),
    ("1700000000.5", 1_700_000_000.5),
    ("1700000000000", 1_700_000_000.0),  # milliseconds
    ("2023-11-14T22:13:20Z", 1_700_000_000.0),
    ("2023-11-14 22:13:20", 1_700_000_000.0),  # naive = UTC (NAB's format)
    ("2023-11-15T00:13:20+02:00", 1_700_000_000.0),
])
def test_timestamps(text: str, epoch: float) -> None:
    assert parse_timestamp(text) == epoch


def test_errors_name_the_field() -> None:
    with pytest.raises(RowError, match="timestamp 'noon'"):
        parse_timestamp("noon")
    with pytest.raises(RowError, match="value 'inf' is not finite"):
        parse_value("inf")
    with pytest.raises(RowError, match="expected 2 fields"):
        split_row("1,2,3")


def test_header_detection_and_quotes() -> None:
    assert is_header("timestamp,value")
    assert is_header('"time","cpu"')
    assert not is_header("1700000000,3")
    assert split_row('"1700000000", "3.5"') == ("1700000000", "3.5")

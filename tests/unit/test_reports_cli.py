"""`watchkeeper report` argument parsing: offsets such as -7d are values, not options."""

from __future__ import annotations

from watchkeeper.cli import build_parser


def test_negative_offsets_parse_as_values() -> None:
    args = build_parser().parse_args(["report", "trend", "--from", "-7d", "--to", "-1h", "--metric", "cpu"])
    assert (args.start, args.end, args.metric) == ("-7d", "-1h", ["cpu"])
    args = build_parser().parse_args(["report", "slo", "--from", "-1.5d"])
    assert args.start == "-1.5d"

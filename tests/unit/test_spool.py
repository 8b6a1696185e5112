"""Given batches appended to the spool, expect them back in order until acknowledged, across a reopen,
with a torn tail cut off, the oldest segment dropped (and counted) when the disk bound is reached, and one
owner per spool."""

from __future__ import annotations

from pathlib import Path

import pytest

from watchkeeper.producers.spool import Spool, SpoolError


def fill(spool: Spool, n: int, size: int = 100, start: int = 0) -> None:
    for i in range(start, start + n):
        assert spool.append(f"k{i}".encode(), f"{i:08d}".encode().ljust(size, b"."), points=i)


def test_in_order_until_acknowledged(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=1000)
    fill(spool, 25)
    first = spool.read(max_records=10)
    assert [r.number for r in first] == list(range(10))
    assert first[3].key == b"k3" and first[3].value.startswith(b"00000003") and first[3].points == 3
    assert [r.number for r in spool.read(max_records=10)] == list(range(10)), "nothing moves before the ack"
    spool.ack(10)
    assert [r.number for r in spool.read(max_records=100)] == list(range(10, 25))
    assert spool.pending() == 15 and spool.pending_points() == sum(range(10, 25))
    spool.ack(25)
    assert spool.read() == [] and spool.pending() == 0
    assert spool.stats.sent_batches == 25 and spool.stats.sent_points == sum(range(25))
    assert len(list(tmp_path.glob("*.seg"))) == 1, "fully sent segments are deleted"


def test_survives_a_reopen(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=1000)
    fill(spool, 30)
    spool.ack(12)
    spool.close()
    again = Spool(tmp_path, segment_bytes=1000)
    assert [r.number for r in again.read(max_records=100)] == list(range(12, 30))
    fill(again, 5, start=30)
    assert [r.value[:8] for r in again.read(max_records=100)][-1] == b"00000034"


def test_torn_tail_is_cut_off(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    fill(spool, 3)
    spool.close()
    seg = sorted(tmp_path.glob("*.seg"))[-1]
    seg.write_bytes(seg.read_bytes()[:-7])  # a crash in the middle of the third record
    again = Spool(tmp_path)
    assert [r.number for r in again.read()] == [0, 1]
    fill(again, 1, start=3)
    assert [r.value[:8] for r in again.read()] == [b"00000000", b"00000001", b"00000003"]


def test_bounded_disk_drops_the_oldest_and_counts_it(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10_000, segment_bytes=2_000)
    fill(spool, 200)  # ~23 KB of records into a 10 KB spool
    assert spool.disk_bytes() <= 10_000
    kept = spool.read(max_records=1000)
    dropped = spool.stats.dropped_batches["spool_full"]
    assert dropped + len(kept) == 200 and dropped > 0
    assert kept[0].number == dropped and kept[-1].number == 199, "the newest are kept, in order"
    assert spool.stats.dropped_points["spool_full"] == sum(range(dropped))


def test_a_batch_larger_than_the_spool_is_refused(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=5_000)
    assert not spool.append(b"k", b"x" * 6_000, points=7)
    assert spool.stats.dropped_points == {"too_large": 7} and spool.pending() == 0


def test_one_process_per_spool(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    with pytest.raises(SpoolError, match="in use"):
        Spool(tmp_path)
    spool.close()
    Spool(tmp_path).close()


def test_a_key_longer_than_its_16_bit_length_field_never_fits(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s")
    assert spool.fits(b"k" * 0xFFFF, b"v") and not spool.fits(b"k" * 0x10000, b"v")
    spool.close()

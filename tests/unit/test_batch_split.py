"""Given any batch and a message size, expect pieces that fit (unless one point alone is larger) and that
together hold exactly the batch's points, in order, with its source and common labels."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from watchkeeper.producers.batch_split import split_batch
from watchkeeper.schemas.codec import encode
from watchkeeper.schemas.samples import SampleBatch, SeriesBlock

blocks = st.builds(
    lambda name, labels, n, pad: SeriesBlock(name=name, labels={**labels, "pad": "p" * pad},
                                             ts=[1_790_000_000.0 + k for k in range(n)],
                                             values=[k * 0.25 for k in range(n)]),
    st.sampled_from(["a", "b_total", "c:d"]), st.dictionaries(st.sampled_from(["x", "y", "z"]), st.text(max_size=5)),
    st.integers(0, 300), st.integers(0, 600),
)


def points(batch: SampleBatch) -> list[tuple[str, tuple[tuple[str, str], ...], float, float]]:
    return [(b.name, tuple(sorted(b.labels.items())), t, v) for b in batch.series for t, v in zip(b.ts, b.values,
                                                                                                  strict=True)]


@settings(max_examples=200, deadline=None)
@given(series=st.lists(blocks, max_size=30), max_bytes=st.integers(200, 20_000))
def test_pieces_fit_and_keep_every_point_in_order(series: list[SeriesBlock], max_bytes: int) -> None:
    batch = SampleBatch(source="src", labels={"env": "prod"}, series=series)
    pieces = split_batch(batch, max_bytes)
    assert [p for piece, _ in pieces for p in points(piece)] == points(batch)
    for piece, value in pieces:
        assert value == encode(piece) and piece.source == "src" and piece.labels == {"env": "prod"}
        if len(value) > max_bytes:  # only a single point alone larger than the limit may stay over it
            assert piece.point_count() <= 1 and len(piece.series) <= 1
    if len(encode(batch)) <= max_bytes:
        assert len(pieces) == 1


def test_one_point_larger_than_the_limit_comes_back_alone() -> None:
    batch = SampleBatch(source="s", series=[SeriesBlock(name="m", labels={"blob": "x" * 5000}, ts=[1.0], values=[1.0]),
                                            SeriesBlock(name="m", ts=[1.0], values=[2.0])])
    pieces = split_batch(batch, 1000)
    assert [len(v) > 1000 for _, v in pieces] == [True, False]

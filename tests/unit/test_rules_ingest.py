"""The rules' store buffer (`agents.rules_ingest.SeriesBuffer`): a prune while points are still queued
(not yet appended to the store) keeps them, and keeps their series in the registry. Found by the partial
stage's restart test: a restored partition replays messages without evaluating (so without appending),
and the prune that followed released every series whose points were only queued; their indexes were
reused and the next points were stored under the wrong series."""

from __future__ import annotations

import numpy as np

from watchkeeper.agents.rules_ingest import SeriesBuffer


def test_a_prune_keeps_the_queued_points_and_their_series() -> None:
    buf = SeriesBuffer()
    a = buf.registry.index_of("m", {"host": "a"})
    b = buf.registry.index_of("m", {"host": "b"})
    buf.append(np.array([a, b]), np.array([100.0, 100.0]), np.array([1.0, 2.0]))
    buf.prune(50.0)  # nothing older than 50 s: nothing to drop
    c = buf.registry.index_of("m", {"host": "c"})
    assert c not in (a, b)
    buf.append(np.array([c]), np.array([101.0]), np.array([3.0]))
    buf.flush()
    got = {s.labels["host"]: s.values.tolist() for s in buf.store.select([], 0, 1e12)}
    assert got == {"a": [1.0], "b": [2.0], "c": [3.0]}


def test_a_prune_releases_the_series_with_no_point_left() -> None:
    buf = SeriesBuffer()
    old = buf.registry.index_of("m", {"host": "old"})
    new = buf.registry.index_of("m", {"host": "new"})
    buf.append(np.array([old, new]), np.array([10.0, 100.0]), np.array([1.0, 2.0]))
    buf.prune(50.0)
    assert buf.registry.find("m", {"host": "old"}) is None and buf.registry.find("m", {"host": "new"}) == new
    assert [s.labels["host"] for s in buf.store.select([], 0, 1e12)] == ["new"]

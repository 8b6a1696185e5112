"""The stale-event decision: an alert event not newer than the applied one for its fingerprint is skipped."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from watchkeeper.core.notify.stale_events import Applied, order_key, stale_reason
from watchkeeper.schemas.alerts import AlertState


def test_first_event_is_applied() -> None:
    assert stale_reason(None, 10.0, "firing") is None


def test_old_firing_after_resolved_is_older() -> None:
    assert stale_reason(Applied(20.0, "resolved"), 10.0, "firing") == "older"


def test_same_transition_twice_is_duplicate() -> None:
    assert stale_reason(Applied(10.0, "firing"), 10.0, "firing") == "duplicate"


def test_equal_time_resolved_wins_over_firing_in_either_order() -> None:
    assert stale_reason(Applied(10.0, "firing"), 10.0, "resolved") is None
    assert stale_reason(Applied(10.0, "resolved"), 10.0, "firing") == "older"


def test_newer_firing_after_resolved_is_applied() -> None:
    assert stale_reason(Applied(20.0, "resolved"), 30.0, "firing") is None


def _apply(events: list[tuple[float, AlertState]]) -> Applied | None:
    last: Applied | None = None
    for t, s in events:
        if stale_reason(last, t, s) is None:
            last = Applied(t, s)
    return last


_events = st.lists(
    st.tuples(st.integers(0, 5).map(float), st.sampled_from(["firing", "resolved"])), min_size=1, max_size=8
)


@given(_events, st.data())
def test_any_interleaving_or_duplication_gives_the_in_order_final_state(
    events: list[tuple[float, AlertState]], data: st.DataObject
) -> None:
    in_order = _apply(sorted(events, key=lambda e: order_key(*e)))
    replayed = data.draw(st.lists(st.sampled_from(events), min_size=0, max_size=8))
    shuffled = data.draw(st.permutations(events + replayed))
    assert _apply(list(shuffled)) == in_order

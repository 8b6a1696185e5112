"""The exactly-once output rule, one for every stateful agent.

Output made from input partition p goes to output partition p, each record numbered by a per-partition
sequence header (`wk-seq`, 1, 2, ...); the number of the last one made is part of p's checkpoint. A step
is deterministic (the same input in the same order, with the same record timestamps, makes the same
output in the same order), so after a restart or a move the replay from the checkpoint makes again the
records sent since, with the same numbers: the last number on output partition p, read when p is
resumed, says which of them are already there, and those are not sent again. Every record once, exactly,
without Kafka transactions (which tansu does not have).

An output made without input (an idle close, `tick`) carries `wk-tick-after`, the last input offset
before it: a restart whose checkpoint predates it makes it again at the same point of the replay.
"""

from __future__ import annotations

from collections.abc import Sequence

SEQ_HEADER = "wk-seq"
TICK_HEADER = "wk-tick-after"

Headers = Sequence[tuple[str, bytes]]


def seq_of(headers: Headers | None) -> int:
    for name, value in headers or ():
        if name == SEQ_HEADER:
            return int(value)
    return 0


def tick_of(headers: Headers | None) -> int | None:
    for name, value in headers or ():
        if name == TICK_HEADER:
            return int(value)
    return None


def already_sent(last_sent: int, first_seq: int, n: int) -> int:
    """How many of `n` records numbered from `first_seq` are already on the output (the first ones),
    given the last number there."""
    return max(0, min(n, last_sent - first_seq + 1))


def headers_of(seq: int, tick_after: int | None) -> list[tuple[str, bytes]]:
    headers = [(SEQ_HEADER, str(seq).encode())]
    if tick_after is not None:
        headers.append((TICK_HEADER, str(tick_after).encode()))
    return headers


def unsnapshotted_tick(last_headers: Headers | None, checkpoint_seq: int) -> int | None:
    """The input offset after which the live run made a tick that the checkpoint does not hold: only the
    last output can be one (each tick is checkpointed before the partition's next input)."""
    if last_headers is None or seq_of(last_headers) <= checkpoint_seq:
        return None
    return tick_of(last_headers)

"""Given a level shift on wk.aggregates and a worker killed with SIGKILL twice mid-stream (once after the
alert went pending, once after it fired, each time restarted), expect on wk.alerts exactly the transitions
the pure core computes, each once: the restarted worker resumes from the partition's checkpoint (written
every 700 messages, so each kill lands between two), replays the input after it, scores the same points
again and sends none of the transitions already on the topic (`wk-seq` in the `anomaly/aggregates`
stream), and loses none."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from tests.integration.kafka_io import consume_until
from tests.integration.test_anomaly_agent import (
    SHIFT,
    N,
    anomaly_config,
    expected,
    latency_messages,
    produce_all,
    start_worker,
    stop_worker,
)
from watchkeeper.plumbing.config import Config
from watchkeeper.schemas import AlertEvent, decode


def test_killed_twice_mid_stream_every_transition_exactly_once(wk_config: Config, tmp_path: Path) -> None:
    cfg = anomaly_config(wk_config, tmp_path)
    cfg.anomaly.checkpoint_messages = 700
    t = cfg.kafka.topics
    want = expected("LatencyShift", {"job": "api", "instance": "web-1"}, first=1)
    assert [s for _, s, _ in want] == ["pending", "firing", "resolved"]

    def alerts(n: int, timeout: float = 180) -> list[AlertEvent]:
        recs = asyncio.run(consume_until(cfg.kafka.bootstrap, t.alerts, lambda r: len(r) >= n, timeout=timeout))
        return [decode(r.value, AlertEvent) for r in recs]

    # (input up to, alerts on the topic by then): each stage ends with a SIGKILL but the last.
    stages = [(SHIFT + 3, 1), (SHIFT + 20, 2), (N, 3)]
    sent = 1
    for n, (stop, expect) in enumerate(stages):
        proc = start_worker(cfg, tmp_path, f"worker{n}")
        try:
            asyncio.run(produce_all(cfg.kafka.bootstrap, t.aggregates, latency_messages(sent, stop), partition=4))
            sent = stop
            got = alerts(expect)
            assert len(got) >= expect, (tmp_path / f"worker{n}.log").read_text()[-3000:]
            if n < len(stages) - 1:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
            else:  # everything on the topic a few seconds later: anything sent twice would be there by now
                got = alerts(len(want) + 1, timeout=5)
        finally:
            stop_worker(proc)
    assert [("LatencyShift", e.state, e.event_time) for e in got] == want, \
        (tmp_path / "worker2.log").read_text()[-3000:]

"""The real Watchkeeper worker (`create_app` with the window agent), instrumented for the benchmark: it
appends `time samples cpu_seconds peak_rss_bytes step_cpu_seconds rss_bytes series_held` to a stats file every 0.2 s
while it processes (`rss_bytes`: resident now; `series_held`: the series registry's size)."""

from __future__ import annotations

import sys
import time
from typing import Any

from bench.windows.peak_rss import current_rss, peak_rss
from watchkeeper.agents.app import create_app, make_worker
from watchkeeper.commands.worker import worker_settings
from watchkeeper.plumbing.config import load_config


def main(config_path: str, stats_path: str) -> None:
    cfg = load_config(config_path)
    app = create_app(worker_settings(cfg, agents=("windows",)))
    step = app.window_step  # type: ignore[attr-defined]
    process = step.process_many
    stats = open(stats_path, "a", buffering=1)  # noqa: SIM115 (lives as long as the process)
    last = [0.0]
    in_step = [0.0]  # CPU seconds inside the window step (the rest is Kafka, Faust and the event loop)

    def write() -> None:
        rss = peak_rss()
        stats.write(f"{time.time():.6f} {step.samples} {time.process_time():.6f} {rss} {in_step[0]:.6f} "
                    f"{current_rss()} {len(step.registry)}\n")

    def timed(*args: Any, **kwargs: Any) -> Any:
        now = time.monotonic()
        if step.samples == 0 or now - last[0] > 0.2:
            write()
            last[0] = now
        cpu = time.process_time()
        out = process(*args, **kwargs)
        in_step[0] += time.process_time() - cpu
        return out

    step.process_many = timed

    @app.timer(0.2)
    async def flush_stats() -> None:
        write()

    make_worker(app).execute_from_commandline()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

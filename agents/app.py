"""The Faust app. Every agent module in `AGENT_MODULES` exposes ``register(app, cfg)``.

Faust's own windowed tables close windows by wall clock and drop them on a backlog, so no agent uses
them: window state is kept by the pure core and checkpointed into plain tables (DESIGN.md, Time).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import faust

from watchkeeper.plumbing.config import Config
from watchkeeper.runtime.broker_defects import DefectsProbe
from watchkeeper.schemas.topics import DEFAULT_TOPICS

# Order matters only for readability of logs; each module registers its agents, topics and tables.
AGENT_MODULES: tuple[str, ...] = (
    "watchkeeper.agents.window_agent", "watchkeeper.agents.rules_agent", "watchkeeper.agents.anomaly_agent")


def create_app(cfg: Config, modules: tuple[str, ...] = AGENT_MODULES, **overrides: Any) -> faust.App:
    settings: dict[str, Any] = {
        "broker": f"kafka://{cfg.kafka.bootstrap}",
        "store": "memory://",
        "topic_partitions": DEFAULT_TOPICS["samples"].partitions,
        "topic_replication_factor": cfg.kafka.replication_factor,
        "broker_session_timeout": cfg.kafka.session_timeout,
        "broker_heartbeat_interval": cfg.kafka.heartbeat_interval,
        "consumer_auto_offset_reset": "earliest",
        "web_enabled": False,
        # Faust's default is 0.0.0.0; its pages (tables, stats) are not for the network.
        "web_bind": cfg.worker.web_host,
        "web_port": cfg.worker.web_port,
        "producer_linger_ms": 5,
        "producer_max_batch_size": 512 * 1024,
        "producer_max_request_size": 4 * 1024 * 1024,
        "stream_buffer_maxsize": 4096,
        "table_standby_replicas": 0,  # resumes read checkpoints by their own fetch: a standby's reading is waste
        "datadir": str(cfg.data_path / "faust"),
    }
    settings.update(overrides)
    Path(settings["datadir"]).mkdir(parents=True, exist_ok=True)
    app = faust.App(cfg.worker.app_id, **settings)
    app.wk_config = cfg  # type: ignore[attr-defined]
    # Which tansu workarounds the agents switch on (runtime.broker_defects): probed once, at start.
    app.broker_defects = DefectsProbe(cfg.kafka.bootstrap, f"{cfg.worker.app_id}-broker-probe")  # type: ignore[attr-defined]
    app.task(app.broker_defects.run)  # type: ignore[attr-defined]
    for name in modules:
        importlib.import_module(name).register(app, cfg)
    return app


def make_worker(app: faust.App, loglevel: str = "warning") -> faust.Worker:
    """Faust's worker without its terminal spinner. To spin it on every log line Faust sets the *root*
    logger to DEBUG for the life of the process, so each debug call of aiokafka, Faust and mode (several
    per Kafka request) builds a log record that every handler then drops: ~3 % of the window worker's CPU.
    The spinner is never shown here (quiet), so it goes and the root logger keeps `loglevel`."""
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.spinner = None
    return worker

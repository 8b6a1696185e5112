"""The Faust app. Each agent module exposes ``register(app, settings)`` and receives only its own settings
(`WindowAgentSettings`, `RulesAgentSettings`, `AnomalyAgentSettings`), which the worker command picks out of
`watchkeeper.yaml` into `WorkerSettings`.

Faust's own windowed tables close windows by wall clock and drop them on a backlog, so no agent uses
them: window state is kept by the pure core and checkpointed into plain tables (DESIGN.md, Time).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust

from watchkeeper.agents import anomaly_agent, rules_agent, window_agent
from watchkeeper.agents.anomaly_agent import AnomalyAgentSettings
from watchkeeper.agents.rules_wiring import RulesAgentSettings
from watchkeeper.agents.task_dump import install_task_dump
from watchkeeper.agents.window_agent import WindowAgentSettings
from watchkeeper.plumbing.config import KafkaConfig, WorkerConfig
from watchkeeper.runtime.broker_defects import DefectsProbe
from watchkeeper.schemas.topics import DEFAULT_TOPICS

PRODUCER_REQUEST_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class WorkerSettings:
    """What the worker reads of `watchkeeper.yaml`, picked by the command that starts it (as Prometheus' rule
    manager gets its `ManagerOptions`): the Faust app's own, and each agent's settings, handed to that agent
    alone. An agent without settings is not registered (benchmarks and tests run one, or none)."""

    kafka: KafkaConfig  # the bootstrap, the group session, the replication of Faust's topics
    worker: WorkerConfig  # the app id and Faust's web listener
    data_path: Path  # Faust's data dir is <data_path>/faust
    windows: WindowAgentSettings | None = None
    rules: RulesAgentSettings | None = None
    anomaly: AnomalyAgentSettings | None = None


def create_app(settings: WorkerSettings, **overrides: Any) -> faust.App:
    kafka, worker = settings.kafka, settings.worker
    conf: dict[str, Any] = {
        "broker": f"kafka://{kafka.bootstrap}",
        "store": "memory://",
        "topic_partitions": DEFAULT_TOPICS["samples"].partitions,
        "topic_replication_factor": kafka.replication_factor,
        "broker_session_timeout": kafka.session_timeout,
        "broker_heartbeat_interval": kafka.heartbeat_interval,
        "consumer_auto_offset_reset": "earliest",
        "web_enabled": False,
        # Faust's default is 0.0.0.0; its pages (tables, stats) are not for the network.
        "web_bind": worker.web_host,
        "web_port": worker.web_port,
        "producer_linger_ms": 5,
        "producer_max_batch_size": 512 * 1024,
        "producer_max_request_size": 4 * 1024 * 1024,
        # Faust's default is 1,200 s: one broker answer lost (seen under load with tansu: a metadata request
        # never answered) then held every send and checkpoint flush of the worker for 20 minutes. Kafka's
        # own default, 30 s: the request is given up and sent again.
        "producer_request_timeout": PRODUCER_REQUEST_TIMEOUT_SECONDS,
        "stream_buffer_maxsize": 4096,
        "table_standby_replicas": 0,  # resumes read checkpoints by their own fetch: a standby's reading is waste
        "datadir": str(settings.data_path / "faust"),
    }
    conf.update(overrides)
    Path(conf["datadir"]).mkdir(parents=True, exist_ok=True)
    app = faust.App(worker.app_id, **conf)
    # Which tansu workarounds the agents switch on (runtime.broker_defects): probed once, at start.
    app.broker_defects = DefectsProbe(kafka.bootstrap, f"{worker.app_id}-broker-probe")  # type: ignore[attr-defined]
    app.task(app.broker_defects.run)  # type: ignore[attr-defined]
    app.task(install_task_dump)
    # Order matters only for readability of logs; each registers its agents, topics and tables.
    if settings.windows is not None:
        window_agent.register(app, settings.windows)
    if settings.rules is not None:
        rules_agent.register(app, settings.rules)
    if settings.anomaly is not None:
        anomaly_agent.register(app, settings.anomaly)
    return app


def make_worker(app: faust.App, loglevel: str = "warning") -> faust.Worker:
    """Faust's worker without its terminal spinner. To spin it on every log line Faust sets the *root*
    logger to DEBUG for the life of the process, so each debug call of aiokafka, Faust and mode (several
    per Kafka request) builds a log record that every handler then drops: ~3 % of the window worker's CPU.
    The spinner is never shown here (quiet), so it goes and the root logger keeps `loglevel`."""
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.spinner = None
    return worker

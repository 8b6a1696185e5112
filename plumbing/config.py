"""`watchkeeper.yaml`: one file for everything but rules, routing and SLOs (which keep their own formats).

Every field has a default, so no file is needed for `watchkeeper up`. Errors name file, line and field.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, field_validator

from watchkeeper.core.errors import SourceError
from watchkeeper.core.promql.evaluator import DEFAULT_SEMANTICS, Semantics
from watchkeeper.core.yaml_source import load_yaml_file
from watchkeeper.plumbing.errors import ConfigError
from watchkeeper.plumbing.log_filters import KNOWN_SECRETS
from watchkeeper.schemas.limits import IngestLimits
from watchkeeper.schemas.topics import DEFAULT_TOPICS

DEFAULT_CONFIG_FILE = "watchkeeper.yaml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TopicsConfig(_Section):
    samples: str = DEFAULT_TOPICS["samples"].name
    aggregates: str = DEFAULT_TOPICS["aggregates"].name
    alerts: str = DEFAULT_TOPICS["alerts"].name
    notifications: str = DEFAULT_TOPICS["notifications"].name
    deadletter: str = DEFAULT_TOPICS["deadletter"].name


class KafkaConfig(_Section):
    bootstrap: str = "127.0.0.1:9092"
    topics: TopicsConfig = TopicsConfig()
    # Short sessions make tansu's first JoinGroup (which waits session_timeout/2) quick.
    session_timeout: float = 10.0
    replication_factor: int = 1

    @property
    def heartbeat_interval(self) -> float:
        """Seconds between consumer-group heartbeats: Kafka's advice of at most a third of the session timeout,
        and no more than Kafka's 3 s default. Every group member (Faust's, the rules shards', the sinks') uses it."""
        return min(3.0, self.session_timeout / 3)


class BrokerConfig(_Section):
    """The dev broker (tansu) that `watchkeeper up` and `watchkeeper broker` start."""

    host: str = "127.0.0.1"
    port: int = 9092


class ClickHouseConfig(_Section):
    # Empty means embedded chDB at <data_dir>/clickhouse.
    dsn: str = ""
    # The embedded owner's read-only ClickHouse HTTP endpoint (docs/operations.md, "Security"). Off loopback it needs
    # http_password (or WK_CLICKHOUSE_HTTP_PASSWORD); http_allowed_hosts are extra `Host` names it answers.
    http_host: str = "127.0.0.1"
    http_port: int = 8123
    http_user: str = "default"
    http_password: str = ""
    http_allowed_hosts: list[str] = []
    # Limits of every query through that endpoint: far above what the dashboard and reports need, far
    # below what a runaway query takes. Readers are the queries that can run at once.
    query_max_execution_time: float = Field(default=30.0, gt=0)
    query_max_memory_usage: int = Field(default=2 * 2**30, gt=0)
    query_max_result_rows: int = Field(default=1_000_000, gt=0)
    query_max_result_bytes: int = Field(default=256 * 2**20, gt=0)
    query_readers: int = Field(default=2, gt=0, le=16)
    # Longer than the 30-day SLO period, so the oldest edge of an SLO window is still stored.
    samples_ttl_days: int = 35
    batch_rows: int = 50_000
    flush_seconds: float = 2.0


class WindowsConfig(_Section):
    width: float = Field(default=10.0, gt=0)
    allowed_lateness: float = Field(default=5.0, ge=0)
    # Checkpoint each input partition's window state after this many messages or seconds, whichever first.
    snapshot_every_messages: int = Field(default=500, gt=0)
    snapshot_every_seconds: float = Field(default=1.0, gt=0)
    # Up to this many input messages of a partition (one fetch) go through the window step as one batch,
    # live and in a restart's replay; batch_within bounds how long Faust's stream waits to fill a batch.
    batch_messages: int = Field(default=1000, gt=0)
    batch_within: float = Field(default=0.05, gt=0)
    # Event time (docs/concepts.md, "Messages and windows"): samples more than max_future seconds ahead of processing
    # time are refused (`future`), by the push API and remote_write at the front door and by the worker; a
    # source silent for idle_timeout seconds (default 2 x width + allowed_lateness) has its windows closed by
    # processing time.
    max_future: float = Field(default=600.0, gt=0)
    idle_timeout: float | None = Field(default=None, gt=0)
    # Bounded state: at most max_series series per worker (new ones beyond are refused: `series_limit`);
    # a series without samples for series_idle_seconds (default max(1 h, 4 x idle_timeout)) is forgotten.
    max_series: int = Field(default=1_000_000, gt=0)
    series_idle_seconds: float | None = Field(default=None, gt=0)
    # Sources (the Kafka key: a batch's `source`, the sender's choice) are bounded the same way: a source
    # idle for series_idle_seconds that owns no series and no open window is forgotten, and beyond
    # max_sources held by one input partition's engine (in the window and the rules step alike) samples of
    # a new source are refused (`source_limit`), as Mimir's per-tenant limits refuse rather than grow. Real
    # fleets send a few thousand hosts per partition; 100,000 is a few tens of MB of per-source state per partition,
    # and only a client choosing fresh keys on purpose (or by a bug) reaches it. Per partition, not per
    # worker, so the decision depends on that partition's input only and a replay makes it again.
    max_sources: int = Field(default=100_000, gt=0)


class SystemProducerConfig(_Section):
    enabled: bool = True
    interval: float = Field(default=10.0, gt=0)


class ProbeTargetConfig(_Section):
    """One HTTP target, probed like Prometheus' blackbox exporter's http module."""

    url: str = Field(pattern=r"^https?://")
    method: str = "GET"
    # Statuses that count as success; empty means any 2xx.
    expect_status: list[int] = []
    # A regular expression the body must match (searched, not anchored); empty means no check.
    body_match: str = ""
    timeout: float = Field(default=5.0, gt=0)
    interval: float = Field(default=30.0, gt=0)
    labels: dict[str, str] = {}
    # False accepts self-signed certificates (their days to expiry are still reported).
    verify_tls: bool = True

    @field_validator("body_match")
    @classmethod
    def _regex(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"{pattern!r} is not a valid regular expression ({exc})") from None
        return pattern


class ProbeProducerConfig(_Section):
    targets: list[ProbeTargetConfig] = []


class ScrapeTargetConfig(_Section):
    """One Prometheus/OpenMetrics endpoint; `job` and `instance` label its series as Prometheus does."""

    url: str = Field(pattern=r"^https?://")
    job: str = "scrape"
    interval: float = Field(default=15.0, gt=0)
    timeout: float = Field(default=10.0, gt=0)
    labels: dict[str, str] = {}


class ScrapeProducerConfig(_Section):
    targets: list[ScrapeTargetConfig] = []


class PushConfig(_Section):
    """The push API: JSON samples, Pushgateway-style text exposition, Prometheus remote_write."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 9091
    # Token every request must carry (`Authorization: Bearer <token>`, or basic auth with it as password);
    # the env var WK_PUSH_TOKEN sets it too. Empty is allowed on a loopback address only.
    token: str = ""
    # Host names (besides localhost and loopback addresses) a request's Host header may carry, e.g. a reverse
    # proxy's; on loopback any other Host is refused (DNS rebinding).
    allowed_hosts: list[str] = []
    max_body_bytes: int = Field(default=32 * 2**20, gt=0)


class IngestLimitsConfig(_Section):
    """What one ingestion request (push JSON or text, remote_write, one scrape) may hold (docs/ingestion.md).

    Defaults follow Prometheus and Mimir where they have one. The `future` bound is `windows.max_future`.
    """

    max_label_names_per_series: int = Field(default=30, gt=0)
    max_label_name_length: int = Field(default=1024, gt=0)
    max_label_value_length: int = Field(default=2048, gt=0)
    # The spool keys a record by its source in 16 bits, so a source can never exceed 65,535 bytes.
    max_source_length: int = Field(default=256, gt=0, le=60_000)
    max_series_per_request: int = Field(default=10_000, gt=0)
    max_points_per_request: int = Field(default=100_000, gt=0)
    max_decompressed_bytes: int = Field(default=32 * 2**20, gt=0)


class SpoolConfig(_Section):
    """The durable local spool every producer writes through, drained in order to Kafka."""

    # Empty means <data_dir>/spool.
    dir: str = ""
    max_bytes: int = Field(default=1024 * 2**20, gt=0)
    # fsync the spool at most this often (a crash loses at most this much of what was accepted).
    fsync_seconds: float = Field(default=0.2, ge=0)
    # The largest Kafka message a producer sends (the producer's max_request_size; keep it at or below the
    # topic's max.message.bytes): larger batches are split into several messages before they are spooled.
    max_message_bytes: int = Field(default=2**20, ge=4096)


class ProducersConfig(_Section):
    system: SystemProducerConfig = SystemProducerConfig()
    probe: ProbeProducerConfig = ProbeProducerConfig()
    scrape: ScrapeProducerConfig = ScrapeProducerConfig()
    push: PushConfig = PushConfig()
    spool: SpoolConfig = SpoolConfig()
    limits: IngestLimitsConfig = IngestLimitsConfig()


class WorkerConfig(_Section):
    app_id: str = "watchkeeper"
    # Faust's web server (off: `web_enabled` is False); were it on, it would listen here, never on 0.0.0.0.
    web_host: str = "127.0.0.1"
    web_port: int = 6066


class DashboardConfig(_Section):
    host: str = "127.0.0.1"
    port: int = 8080
    # Required when `host` is not loopback (env WK_DASHBOARD_TOKEN): browsers log in with basic auth (any user,
    # the token as password) or once with `?token=`, which sets a cookie; scripts send `Authorization: Bearer`.
    token: str = ""
    allowed_hosts: list[str] = []
    refresh_seconds: float = Field(default=10.0, gt=0)


class NotifySinkConfig(_Section):
    """The notify sink (delivery engine); the Alertmanager file it loads is `core.notify.config.NotifyConfig`."""

    # An Alertmanager configuration file (route, receivers, inhibit_rules), relative to this file.
    alertmanager_config: str = ""
    external_url: str = "http://127.0.0.1:8080"
    retry_initial_seconds: float = Field(default=1.0, gt=0)
    retry_max_seconds: float = Field(default=60.0, gt=0)
    give_up_after_seconds: float = Field(default=3600.0, gt=0)  # a notification failing this long is dropped
    parallel_deliveries: int = Field(default=16, gt=0)
    # How long delivered, failed and held notifications stay in the outbox, and notification-log entries not
    # written again stay in the log (Alertmanager's --data.retention, 120h); older ones are deleted. Within it a
    # replayed alert is not notified twice; beyond it an old replay may notify again, as in Alertmanager.
    retention_seconds: float = Field(default=120 * 3600.0, gt=0)
    # At most this many notifications wait in the outbox (new or retrying); beyond it the newest are refused:
    # dead-lettered with the reason, recorded as failed and counted; their group plans them again next flush.
    outbox_max_pending: int = Field(default=100_000, gt=0)


class RulesConfig(_Section):
    """Prometheus rule files evaluated by the rules agent (none: the agent is idle)."""

    # Paths relative to the configuration file.
    files: list[str] = []
    # Sloth prometheus/v1 SLO specs: their recording rules and multi-window burn-rate alerts run here too.
    slo_specs: list[str] = []
    slo_period_days: int = Field(default=30, gt=0)
    # Rule units are spread over this many shards (partitions of <app_id>-rule-shards); more shards than
    # worker processes lets every process get some.
    shards: int = Field(default=8, gt=0)
    # Write each owned shard's checkpoint at least this often (and after every step that sent alerts).
    checkpoint_seconds: float = Field(default=5.0, gt=0)
    # Partitioned evaluation: a samples partition with no rule tick due says how far its watermark moved
    # (a `~wm` record on <app_id>-rule-partials) at most once per this many seconds of event time.
    heartbeat_seconds: float = Field(default=1.0, gt=0)
    # PromQL semantics of every rule expression: prometheus3 (the default: left-open, (t - range, t]; regex
    # `.` matches a newline) or prometheus2 (promtool 2.42's: ranges and lookback closed, [t - range, t]).
    semantics: Semantics = DEFAULT_SEMANTICS
    # How the rules are evaluated. full: every rules process reads every sample into one store (the read rate
    # of one process is the ceiling of the deployment). partitioned: two stages in every worker process; each
    # evaluates the series-local part of every rule (selectors, range functions, partial aggregations) over
    # the samples partitions it owns, sends the partial results on <app_id>-rule-partials, and the process
    # owning a rule's shard merges them in partition order, evaluates the rest and runs the alert state
    # machine. Both give the same alerts; partitioned scales with worker processes.
    evaluation: Literal["partitioned", "full"] = "partitioned"


class AnomalyConfig(_Section):
    """Anomaly rule files (`anomaly:` groups) scored by the anomaly agent (none: the agent is idle)."""

    # Paths relative to the configuration file.
    files: list[str] = []
    # Messages are scored together, a series' points in one detector call: up to this many messages,
    # or what arrived within this many seconds.
    batch_messages: int = Field(default=5000, gt=0)
    batch_seconds: float = Field(default=0.25, gt=0)
    # Checkpoint each input partition's detector states (~3 KiB each for event, 16 for ensemble, 45 for
    # calibrated; only those changed since the last checkpoint are encoded again) after this many messages
    # of the partition or this many seconds; after a restart, what came since is read and scored again.
    checkpoint_messages: int = Field(default=50_000, gt=0)
    checkpoint_seconds: float = Field(default=30.0, gt=0)


class Config(_Section):
    data_dir: str = ".watchkeeper"
    kafka: KafkaConfig = KafkaConfig()
    broker: BrokerConfig = BrokerConfig()
    clickhouse: ClickHouseConfig = ClickHouseConfig()
    windows: WindowsConfig = WindowsConfig()
    producers: ProducersConfig = ProducersConfig()
    worker: WorkerConfig = WorkerConfig()
    dashboard: DashboardConfig = DashboardConfig()
    notify: NotifySinkConfig = NotifySinkConfig()
    rules: RulesConfig = RulesConfig()
    anomaly: AnomalyConfig = AnomalyConfig()
    # Set by the loader: where relative paths in the file are resolved from.
    base_dir: str = Field(default="", exclude=True)

    @property
    def data_path(self) -> Path:
        p = Path(self.data_dir)
        return p if p.is_absolute() else Path(self.base_dir or os.getcwd()) / p

    def resolve(self, path: str) -> Path:
        p = Path(path)
        return p if p.is_absolute() else Path(self.base_dir or os.getcwd()) / p

    def ingest_limits(self) -> IngestLimits:
        """The ingestion bounds: `producers.limits` plus `windows.max_future` (one knob for both sides)."""
        return IngestLimits(max_future=self.windows.max_future, **self.producers.limits.model_dump())

    @property
    def clickhouse_dsn(self) -> str:
        if self.clickhouse.dsn:
            return self.clickhouse.dsn
        return f"chdb://{(self.data_path / 'clickhouse').resolve()}"

    @property
    def embedded_clickhouse(self) -> bool:
        return self.clickhouse_dsn.startswith("chdb:")

    @property
    def clickhouse_query_url(self) -> str:
        """Where readers (sql, reports, dashboard) query: the server, or the owner's read-only endpoint."""
        if self.embedded_clickhouse:
            return f"http://{self.clickhouse.http_host}:{self.clickhouse.http_port}"
        return self.clickhouse_dsn

    @property
    def clickhouse_reader_dsn(self) -> str:
        """`clickhouse_query_url` with the endpoint's credentials, for clickhouse-connect readers.

        Only for opening clients: print or log `clickhouse_query_url`, which has no password in it.
        """
        c = self.clickhouse
        if not (self.embedded_clickhouse and c.http_password):
            return self.clickhouse_query_url
        return f"http://{quote(c.http_user, safe='')}:{quote(c.http_password, safe='')}@{c.http_host}:{c.http_port}"

    def clickhouse_http_headers(self) -> dict[str, str]:
        """The credential headers of ClickHouse's HTTP interface for the embedded endpoint (none without a password)."""
        c = self.clickhouse
        if not (self.embedded_clickhouse and c.http_password):
            return {}
        return {"X-ClickHouse-User": c.http_user, "X-ClickHouse-Key": c.http_password}


def load_config(path: str | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Load `path` (or ./watchkeeper.yaml if present, else defaults); `WK_*` env vars override a few keys."""
    explicit = path is not None
    path = path or os.environ.get("WK_CONFIG") or DEFAULT_CONFIG_FILE
    data: dict[str, Any] = {}
    if os.path.exists(path):
        try:
            doc = load_yaml_file(path)
            if doc.data is not None and not isinstance(doc.data, dict):
                raise doc.error((), "the top level must be a mapping of sections")
            data = doc.data or {}
            cfg = doc.validate(Config, data)
        except SourceError as exc:
            raise ConfigError(exc.path, exc.line, exc.field or "(file)", exc.message) from None
        cfg.base_dir = str(Path(path).resolve().parent)
    elif explicit:
        raise ConfigError(path, None, "(file)", "no such configuration file")
    else:
        cfg = Config()
    if bootstrap := os.environ.get("WK_KAFKA_BOOTSTRAP"):
        cfg.kafka.bootstrap = bootstrap
    if dsn := os.environ.get("WK_CLICKHOUSE_DSN"):
        cfg.clickhouse.dsn = dsn
    if token := os.environ.get("WK_PUSH_TOKEN"):
        cfg.producers.push.token = token
    if token := os.environ.get("WK_DASHBOARD_TOKEN"):
        cfg.dashboard.token = token
    if password := os.environ.get("WK_CLICKHOUSE_HTTP_PASSWORD"):
        cfg.clickhouse.http_password = password
    for key, value in (overrides or {}).items():
        _set_dotted(cfg, key, value)
    register_secrets(cfg)
    return cfg


def register_secrets(cfg: Config) -> None:
    """Tell the log redactor every secret of `cfg` (tokens, the DSN's password, URL credentials)."""
    KNOWN_SECRETS.add_config(cfg.model_dump())


def _set_dotted(cfg: BaseModel, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    target: Any = cfg
    for part in parents:
        target = getattr(target, part)
    setattr(target, leaf, value)

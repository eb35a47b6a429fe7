"""The one settings object, read from the environment (names follow Rocket.Chat's settings)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.core.alerts import AlertPolicy
from streams.core.compat import CompatName, Profile, profile_named, retry_delay_s
from streams.core.endpoints import TRIGGERS, EndpointDirectory
from streams.core.leads import DEFAULT_EMAIL_REGEX, DEFAULT_PHONE_REGEX
from streams.core.sessions import SessionPolicy
from topics.records import DEFAULT_ENDPOINT, DEFAULT_WORKSPACE, EndpointRecord, SigningSecret

# Rocket.Chat's own defaults for Livechat_lead_email_regex / Livechat_lead_phone_regex,
# kept beside the lead-capture code that reads them.
DEFAULT_LEAD_EMAIL_REGEX = DEFAULT_EMAIL_REGEX
DEFAULT_LEAD_PHONE_REGEX = DEFAULT_PHONE_REGEX


def _kafka(default: Any, name: str) -> Any:
    """A Kafka connection setting: `KAFKA_<NAME>`, or `OMNIHOOKS_KAFKA_<NAME>`."""
    upper = f"KAFKA_{name.upper()}"
    return Field(default, validation_alias=AliasChoices(upper, f"OMNIHOOKS_{upper}"))


class SettingsError(ValueError):
    """A bad environment variable; the message names it."""


class Settings(BaseSettings):
    """Everything omnihooks reads from `OMNIHOOKS_*` (and `KAFKA_BOOTSTRAP_SERVERS`)."""

    model_config = SettingsConfigDict(
        env_prefix="OMNIHOOKS_", frozen=True, extra="ignore", populate_by_name=True
    )

    # Rocket.Chat's CRM integration settings
    webhook_url: str = ""
    secret_token: SecretStr = SecretStr("")
    http_timeout_ms: int = Field(5000, gt=0)
    send_on_start: bool = False
    send_on_close: bool = False
    send_on_chat_taken: bool = False
    send_on_chat_queued: bool = False
    send_on_forward: bool = False
    send_on_offline_msg: bool = False
    send_on_visitor_message: bool = False
    send_on_agent_message: bool = False
    send_navigation_history: bool = False
    send_on_lead_capture: bool = False
    lead_email_regex: str = DEFAULT_LEAD_EMAIL_REGEX
    lead_phone_regex: str = DEFAULT_LEAD_PHONE_REGEX

    # The Rocket.Chat server era whose bodies and retry rule are reproduced (streams/core/compat.py,
    # docs/contract.md "Compatibility profiles"): the seed's (2023) or current 7.x servers.
    compat: CompatName = "rocketchat-2023"
    # Rocket.Chat's Site_Url: with it, a message with a file carries `fileUpload` (its link).
    site_url: str = ""

    # Delivery. Unset: the profile's (2023: 10 retries 10 s apart, any non-200 retried;
    # 7: 4 retries, 4 x the HTTP timeout apart, only 5xx/429/network errors retried).
    retry_attempts: int | None = Field(None, ge=0)
    retry_delay_s: float | None = Field(None, ge=0)
    # "documented": any non-200 is retried; "rocketchat-7" (alias "rocketchat-2025"): only
    # 5xx, 429 and network errors, as current Rocket.Chat servers do.
    retry_rule: Literal["documented", "rocketchat-7", "rocketchat-2025"] | None = None
    accept_any_2xx: bool = False
    # Each retry delay moves by up to this share either way (0.2: ±20 %, as Svix does), so
    # jobs failed together do not all come back together. 0: Rocket.Chat's fixed delay.
    retry_jitter: float = Field(0.0, ge=0, le=1)
    # A 429 or 503 answer's Retry-After lengthens the next delay, never beyond this.
    retry_after_max_s: float = Field(300.0, ge=0)
    signing_secret: SecretStr = SecretStr("")
    delivery_concurrency: int = Field(64, gt=0)
    tls_verify: bool = True
    block_private_urls: bool = False
    response_excerpt_bytes: int = Field(2048, ge=0)
    crm_data_max_bytes: int = Field(65536, ge=0)
    # Circuit breaker per endpoint URL (streams/core/breaker.py): open when at least
    # BREAKER_MIN_JOBS distinct jobs were tried in BREAKER_WINDOW_S and BREAKER_FAILURE_RATIO
    # of them failed; its jobs then wait without spending attempts; one probe after the
    # cool-down (doubling to BREAKER_MAX_COOLDOWN_S). A held job goes back to the tail of
    # the retries topic every BREAKER_HOLD_LEASE_S (below SETTLED_RETENTION_S, so a crash
    # repeats nothing the settled table forgot); one held longer than BREAKER_MAX_HOLD_S
    # spends its attempts again and ends as a dead letter.
    breaker: bool = True
    breaker_failure_ratio: float = Field(0.5, gt=0, le=1)
    breaker_min_jobs: int = Field(10, gt=0)
    breaker_window_s: float = Field(60.0, gt=0)
    breaker_cooldown_s: float = Field(30.0, gt=0)
    breaker_max_cooldown_s: float = Field(300.0, gt=0)
    breaker_max_hold_s: float = Field(3 * 86400.0, gt=0)
    breaker_hold_lease_s: float = Field(240.0, gt=0)
    # Alerts (streams/core/alerts.py): to the alert endpoints when a breaker opens or closes
    # cluster-wide, an endpoint is paused or resumed, or ALERT_DEAD_LETTERS of an endpoint's
    # jobs were dead-lettered within ALERT_WINDOW_S. Each delivery worker reports its health
    # every HEALTH_INTERVAL_S; one silent for three is no longer believed to hold anything open.
    alert_dead_letters: int = Field(10, gt=0)
    alert_window_s: float = Field(600.0, gt=0)
    health_interval_s: float = Field(30.0, gt=0)
    # "room": a room's webhooks reach each endpoint in their order (`webhook-sequence`); a
    # job failing holds back its own room's later jobs on that endpoint only. "none": each
    # job on its own, as Rocket.Chat sends them (streams/delivery/room_lines.py).
    delivery_order: Literal["room", "none"] = "room"
    # Relay mode (`omnihooks ingest`): the token Rocket.Chat sends (its Livechat_secret_token),
    # the largest body taken, and how long a write may wait for Kafka before a 503.
    ingest_token: SecretStr = SecretStr("")
    # 4 MiB: a 10,000-message close is about 2 MB; a job carries the body escaped in JSON,
    # and the jobs topic takes half its 16 MiB for a job (the rest for its attempts).
    ingest_max_bytes: int = Field(4 * 1024 * 1024, gt=0)
    ingest_timeout_s: float = Field(5.0, gt=0)
    # `omnihooks console`: `name:token` pairs (comma-separated; a bare token is "console")
    # that may replay, purge, pause and resume; unset, the console is read-only. The workers
    # whose /metrics and /endpoints it reads (comma-separated base URLs; unset: this host's
    # OMNIHOOKS_WEB_PORT), the window its counts cover and how often it reads them.
    console_token: SecretStr = SecretStr("")
    console_workers: str = ""
    console_window_s: float = Field(900.0, ge=60)
    console_scrape_s: float = Field(5.0, gt=0)
    # How long a settled job's outcome is kept, so the same job read again (after a crash)
    # is not POSTed again: the longest a crash's repeats take to arrive (docs/design/delivery.md,
    # "The settled-jobs table").
    # 0: no settled-jobs table (faster delivery; a crash then re-sends what it re-reads).
    settled_retention_s: float = Field(600.0, ge=0)
    # How often finished input offsets are committed (Faust's broker_commit_interval): what
    # a killed worker reads again is what it finished since the last commit.
    commit_interval_ms: int = Field(1000, gt=0)

    # Session pipeline
    close_grace_s: float = Field(30.0, ge=0)
    closed_room_retention_s: float = Field(3600.0, ge=0)
    max_event_bytes: int = Field(1_048_576, gt=0)
    # How long a partition group waits for a co-partitioned input the broker reports behind
    # before it goes on without it (Kafka Streams' max.task.idle.ms): see
    # docs/design/order-merge.md, "The rule".
    order_idle_ms: int = Field(2000, ge=0)
    # false: Faust's fetch order across rooms/messages/crm-data (no merge); for measuring the
    # merge's cost, never for production (docs/design/order-merge.md, "Costs and settings").
    order_merge: bool = True
    # How old (by record timestamp) a record must be before it goes ahead of a quiet
    # co-partitioned input: one producer's appends to two topics do not become visible in the
    # order they were written. 0: the broker's end offsets decide alone
    # (docs/design/order-merge.md, "The rule").
    order_grace_ms: int = Field(1000, ge=0)

    # Kafka and Faust
    kafka_bootstrap_servers: str = _kafka("127.0.0.1:9092", "bootstrap_servers")
    # How every client connects (streams/engine/kafka.py): librdkafka's property names,
    # upper-cased under KAFKA_. A password or key password may come from a file instead
    # (`..._FILE`, as Kubernetes mounts secrets); the file wins.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = _kafka(
        "PLAINTEXT", "security_protocol"
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = _kafka(
        "PLAIN", "sasl_mechanism"
    )
    kafka_sasl_username: str = _kafka("", "sasl_username")
    kafka_sasl_password: SecretStr = _kafka(SecretStr(""), "sasl_password")
    kafka_sasl_password_file: Path | None = _kafka(None, "sasl_password_file")
    # PEM files. No CA: the system's trust store (a public CA, as managed services use).
    kafka_ssl_ca_location: Path | None = _kafka(None, "ssl_ca_location")
    kafka_ssl_certificate_location: Path | None = _kafka(None, "ssl_certificate_location")
    kafka_ssl_key_location: Path | None = _kafka(None, "ssl_key_location")
    kafka_ssl_key_password: SecretStr = _kafka(SecretStr(""), "ssl_key_password")
    kafka_ssl_key_password_file: Path | None = _kafka(None, "ssl_key_password_file")
    # "none" turns off the check that the broker's certificate names the host dialled.
    kafka_ssl_endpoint_identification_algorithm: Literal["https", "none"] = _kafka(
        "https", "ssl_endpoint_identification_algorithm"
    )
    topic_prefix: str = "omnichannel."
    app_id: str = "omnihooks"
    partitions: int | None = Field(
        None, gt=0
    )  # overrides the catalogue's counts (tests, small setups)
    replication_factor: int | None = Field(
        None, gt=0
    )  # overrides the catalogue, clamped to brokers
    # A warm copy of each table partition on another worker (Faust's standby replicas): the
    # worker that takes a partition over after a crash or a deploy starts from it instead
    # of restoring the changelog. With one worker there is nowhere to put one: no cost.
    table_standby_replicas: int = Field(1, ge=0)
    # Static group membership (KIP-345), e.g. a StatefulSet pod's name: a worker restarted
    # under the same name gets its partitions back without a rebalance. A worker stopping
    # on purpose still leaves the group at once (streams/engine/membership.py).
    group_instance_id: str = ""
    # An OTLP/HTTP collector (http://otel-collector:4318): spans of each input record, job
    # and POST are exported there. Empty: no spans; an incoming traceparent still goes on
    # to the CRM (streams/tracing.py).
    otlp_endpoint: str = ""
    # How long the group waits for a worker that died without leaving before its partitions
    # move (Faust's default is 60 s; a lost node should not stall its rooms that long). Four
    # heartbeats (3 s apart); a static member's container restarts well within it, so a
    # crash that Kubernetes restarts costs no rebalance.
    session_timeout_s: float = Field(12.0, gt=0)
    # Tables on disk (OMNIHOOKS_STORE=rocksdb) and Faust's own files; relative to the
    # working directory unless absolute (the image sets /home/omnihooks/data).
    data_dir: Path = Path("omnihooks-data")
    # Where tables live: "memory" (rebuilt from the changelogs at every start) or "rocksdb"
    # (on disk under data_dir: memory stays flat as rooms grow, and a restart reads only the
    # changelog records written since; docs/design/deferred-changelog.md, "RocksDB options").
    store: Literal["memory", "rocksdb"] = "memory"
    # What sends jobs, changelog records and dead letters: librdkafka (confluent-kafka; table
    # writes and jobs skip Faust's per-record send machinery, which was the session pipeline's
    # limit), or Faust's aiokafka producer. aiokafka consumes either way
    # (docs/design/deferred-changelog.md, "Direct table writes").
    producer: Literal["aiokafka", "librdkafka"] = "librdkafka"
    web_port: int = Field(6066, gt=0, lt=65536)
    web_enabled: bool = True

    @model_validator(mode="after")
    def _kafka_security_is_whole(self) -> Settings:
        from_files = (
            ("kafka_sasl_password", self.kafka_sasl_password_file),
            ("kafka_ssl_key_password", self.kafka_ssl_key_password_file),
        )
        for secret, source in from_files:
            if source is not None:
                try:
                    value = source.read_text().strip()
                except OSError as exc:
                    raise ValueError(f"{env_name(secret)}_FILE: {exc.strerror}: {source}") from None
                object.__setattr__(self, secret, SecretStr(value))
        for field in ("kafka_ssl_ca_location", "kafka_ssl_certificate_location",
                      "kafka_ssl_key_location"):  # fmt: skip
            path = getattr(self, field)
            if path is not None and not path.is_file():
                raise ValueError(f"{env_name(field)}: no such file: {path}")
        if (self.kafka_ssl_certificate_location is None) != (self.kafka_ssl_key_location is None):
            raise ValueError(
                "KAFKA_SSL_CERTIFICATE_LOCATION and KAFKA_SSL_KEY_LOCATION go together"
            )
        if self.kafka_security_protocol.startswith("SASL") and not (
            self.kafka_sasl_username and self.kafka_sasl_password.get_secret_value()
        ):
            raise ValueError(
                f"KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD (or KAFKA_SASL_PASSWORD_FILE)"
            )
        return self

    @field_validator("topic_prefix")
    @classmethod
    def _prefix_is_a_topic_name(cls, value: str) -> str:
        allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        if not set(value) <= allowed:
            raise ValueError("may only hold letters, digits, '.', '_' and '-'")
        return value

    @property
    def profile(self) -> Profile:
        return profile_named(self.compat)

    @property
    def retries(self) -> int:
        return self.profile.retries if self.retry_attempts is None else self.retry_attempts

    @property
    def retry_delay(self) -> float:
        if self.retry_delay_s is not None:
            return self.retry_delay_s
        return retry_delay_s(self.profile, self.http_timeout_ms / 1000)

    @property
    def retry_rule_in_force(self) -> str:
        rule = self.retry_rule or self.profile.retry_rule
        return "rocketchat-7" if rule == "rocketchat-2025" else rule

    def default_endpoint(self) -> EndpointRecord | None:
        """The endpoint the environment describes; None without a webhook URL
        (Rocket.Chat sends nothing while Livechat_webhookUrl is empty)."""
        if not self.webhook_url:
            return None
        secret = self.signing_secret.get_secret_value()
        return EndpointRecord(
            workspace=DEFAULT_WORKSPACE,
            id=DEFAULT_ENDPOINT,
            url=self.webhook_url,
            created_at="",
            updated_at="",
            token=self.secret_token.get_secret_value(),
            secrets=(SigningSecret(secret, ""),) if secret else (),
            triggers=tuple(name for name in TRIGGERS if getattr(self, f"send_on_{name}")),
            navigation_history=self.send_navigation_history,
            crm_answers=True,  # Rocket.Chat's own rule: its CRM's answer is the room's crmData
        )

    def endpoint_directory(self) -> EndpointDirectory:
        """The environment's endpoint alone; a worker follows the `endpoints` topic into it."""
        return EndpointDirectory(self.default_endpoint(), self.compat)

    def alert_policy(self) -> AlertPolicy:
        return AlertPolicy(
            dead_letters=self.alert_dead_letters,
            window_s=self.alert_window_s,
            claim_ttl_s=3 * self.health_interval_s,
        )

    def session_policy(self) -> SessionPolicy:
        return SessionPolicy(
            profile=self.profile,
            close_grace_s=self.close_grace_s,
            closed_room_retention_s=self.closed_room_retention_s,
            site_url=self.site_url,
        )

    @property
    def delivery_enabled(self) -> bool:
        """Rocket.Chat sends nothing while Livechat_webhookUrl is empty."""
        return bool(self.webhook_url)


def env_name(field: str) -> str:
    """The environment variable behind a settings field."""
    if field.startswith("kafka_"):
        return field.upper()
    return f"OMNIHOOKS_{field.upper()}"


def load_settings(**overrides: object) -> Settings:
    """Read the environment once; raise SettingsError naming every bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            message = error["msg"].removeprefix("Value error, ")
            if error["loc"]:  # a model-wide check's message names its variables itself
                message = f"{env_name(str(error['loc'][0]))}: {message}"
            problems.append(message)
        raise SettingsError("invalid settings: " + "; ".join(problems)) from None

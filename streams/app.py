"""The Faust app factory: no topic, table or agent exists before `create_app(settings)`."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import faust

from streams.agents.tables import Role, role_app_id
from streams.core.clock import now_iso
from streams.core.endpoints import EndpointDirectory
from streams.engine import kafka, recovery
from streams.engine.followers import follower_service
from streams.engine.kafka import KafkaConfig
from streams.settings import Settings
from topics.catalogue import Catalogue, Topic, load_catalogue
from topics.records import RejectedRecord

log = logging.getLogger(__name__)

REQUEST_OVERHEAD_BYTES = 64 * 1024
FETCH_BYTES_PER_PARTITION = 1024 * 1024


@dataclass
class Omnihooks:
    """The app and its topics, handed to the agent modules that register on it."""

    app: faust.App
    settings: Settings
    catalogue: Catalogue
    topics: dict[Topic, Any]
    role: Role
    # Every workspace's endpoints, as the `endpoints` topic says; `endpoints_loaded` is set
    # once it is read whole, and no webhook is made or sent before.
    endpoints: EndpointDirectory = field(init=False)
    endpoints_loaded: asyncio.Event = field(init=False, default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.endpoints = self.settings.endpoint_directory()
        spec = self.catalogue[Topic.ENDPOINTS]
        self.app.service(follower_service(
            self.settings, spec.name(self.settings.topic_prefix), spec.partitions,
            self.endpoints.apply, self.endpoints_loaded,
        ))  # fmt: skip


async def send_rejected(rejected_topic: Any, message: Any, reason: str) -> None:
    """Keep an input record that could not be used: its bytes, where it was, and why."""
    record = RejectedRecord.of(
        reason, message.topic, message.partition, message.offset, message.key, message.value,
        now_iso(),
    )  # fmt: skip
    await rejected_topic.send(key=message.key, value=record.to_json())


class AssignmentWatch:
    """Tells a timer whether the worker's partitions changed since it last asked: after a
    rebalance, tables hold what the changelogs of newly assigned partitions brought."""

    def __init__(self, app: faust.App) -> None:
        self._app = app
        self._assigned: frozenset[Any] = frozenset()

    def changed(self) -> bool:
        app: Any = self._app
        if app.rebalancing or app.in_recovery:
            # Asked mid-recovery it would read half-filled tables and not be asked again.
            return False
        consumer = app.consumer
        assigned = frozenset(consumer.assignment()) if consumer else frozenset()
        if assigned == self._assigned:
            return False
        self._assigned = assigned
        return True


def create_app(settings: Settings, role: Role = "all") -> Omnihooks:
    """Build the Faust app for a worker role; each role is its own consumer group."""
    catalogue = load_catalogue(settings.partitions, settings.replication_factor)
    app_id = role_app_id(settings, role)
    (settings.data_dir / app_id).mkdir(parents=True, exist_ok=True)
    max_record = max(spec.max_message_bytes for spec in catalogue.specs)
    kafka_config = KafkaConfig.of(settings)
    app = faust.App(
        app_id,
        # The transport's scheme picks the producer (Faust 0.15.3 makes its producer from
        # `broker`; `broker_producer` serves only its threaded producer).
        # omnihooks:// is Faust's aiokafka transport with omnihooks' consumer (streams.engine);
        # omnihooks-rdkafka:// the same with librdkafka's producer.
        broker=kafka_config.faust_brokers(
            "omnihooks-rdkafka" if settings.producer == "librdkafka" else "omnihooks"
        ),
        # memory: rebuilt from the changelogs at start; rocksdb: on disk under datadir,
        # rebuilt from where the store's own persisted offsets left off.
        store=f"{settings.store}://",
        datadir=str(settings.data_dir / app_id),
        topic_partitions=catalogue[Topic.ROOMS].partitions,
        topic_replication_factor=settings.replication_factor or 1,
        table_standby_replicas=settings.table_standby_replicas,
        producer_acks=-1,
        # Batch the changelog, job and retry records: Faust's default (no linger, 16 KB
        # batches) sends one small request per record and was the session pipeline's limit.
        producer_linger=0.005,
        producer_max_batch_size=512 * 1024,
        # one record up to the topics' max.message.bytes (a close with a long transcript)
        producer_max_request_size=max_record + REQUEST_OVERHEAD_BYTES,
        # Per partition and fetch. A larger record still comes whole (the broker returns a
        # first record over the limit entire, KIP-74). At the record limit (16 MB) a
        # recovery's fetches were as large, and several such batches were held decoded: a
        # worker was ready with far more memory than at 1 MB, pages pinned after
        # (docs/history.md).
        consumer_max_fetch_size=FETCH_BYTES_PER_PARTITION,
        broker_commit_interval=settings.commit_interval_ms / 1000,
        broker_session_timeout=settings.session_timeout_s,
        consumer_group_instance_id=settings.group_instance_id or None,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 3),
        web_enabled=settings.web_enabled,
        web_port=settings.web_port,
        web_bind="0.0.0.0",
        autodiscover=False,
        # Every topic, the changelogs too, exists before the worker starts (`omnihooks topics
        # apply`, by an admin): a worker needs no right to create one, and Kafka refuses a
        # create without it even for a topic that exists. No leader topic: no leader tasks.
        topic_allow_declare=False,
        topic_disable_leader=True,
        broker_credentials=kafka_config.faust_credentials(),
    )
    kafka.attach(app, kafka_config)
    recovery.report_restores(app)
    topics = {
        spec.topic: app.topic(
            spec.name(settings.topic_prefix),
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=spec.partitions,
            internal=False,
        )
        for spec in catalogue.specs
    }
    _add_web_pages(app)
    return Omnihooks(app=app, settings=settings, catalogue=catalogue, topics=topics, role=role)


def _add_web_pages(app: faust.App) -> None:
    from streams.metrics import exposition

    async def metrics_page(view: Any, request: Any) -> Any:
        body, _ = exposition()
        # aiohttp refuses parameters in content_type; Prometheus reads plain text/plain as
        # its 0.0.4 text format.
        return view.bytes(body, content_type="text/plain")

    app.page("/metrics")(metrics_page)

    async def health_page(view: Any, request: Any) -> Any:
        # Liveness: the event loop answers and table recovery is not stuck. Kubernetes
        # restarts a worker that fails it.
        tables: Any = app.tables  # TableManagerT does not declare its Recovery service
        status, body = recovery.health(tables.recovery)
        if status != 200:
            log.warning("unhealthy: %s", body)
        return view.json(body, status=status)

    async def ready_page(view: Any, request: Any) -> Any:
        # Readiness: not in the middle of a rebalance (its partitions are being recovered).
        if app.rebalancing:
            return view.json({"status": "rebalancing"}, status=503)
        return view.json({"status": "ready"})

    app.page("/health")(health_page)
    app.page("/ready")(ready_page)

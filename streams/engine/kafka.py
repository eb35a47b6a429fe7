"""Every Kafka client omnihooks makes, built in one place from one `KafkaConfig`.

confluent-kafka (librdkafka) producers, consumers and admin clients, aiokafka consumers, and
the credentials Faust hands its own aiokafka clients all start from `KafkaConfig`, so what
every connection needs (the brokers, the client id, TLS and SASL) is applied once, and the
errors of both stacks are mapped once (`streams/engine/access.py`).

Neither stack gives up on a refused login or certificate: librdkafka retries for ever and
aiokafka says only "Unable to bootstrap". `check_connection` connects once before a command
or worker starts and turns such a refusal into `KafkaAccessError`, naming its cause.

librdkafka reports each write in a callback, from whatever thread polls the producer.
`Acknowledgements` is the one bookkeeping of those reports: which records are still out and
which failed. Writers built on it never report success for a record the brokers refused (a
missing ACL, a record too large): `KafkaWriteError` names the topic and the broker's reason.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streams.engine import access
from streams.engine.access import KafkaAccessError

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient

    from streams.settings import Settings

log = logging.getLogger(__name__)

# librdkafka's own default is 60 s; a command run by hand should say what is wrong sooner.
SOCKET_TIMEOUT_MS = 10_000
# How long a synchronous writer waits for the brokers to acknowledge what it wrote.
WRITE_TIMEOUT_S = 60.0

Report = Callable[[Any, Any], None]


class KafkaWriteError(RuntimeError):
    """Records handed to a producer were refused or not acknowledged in time."""


@dataclass(frozen=True)
class KafkaConfig:
    """How to reach the cluster: what every client of every stack is built from. Secrets
    are kept out of its repr."""

    bootstrap: str
    client_id: str = "omnihooks"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "PLAIN"
    sasl_username: str = ""
    sasl_password: str = field(default="", repr=False)
    ssl_ca_location: str | None = None
    ssl_certificate_location: str | None = None
    ssl_key_location: str | None = None
    ssl_key_password: str = field(default="", repr=False)
    ssl_check_hostname: bool = True

    @classmethod
    def of(cls, settings: Settings) -> KafkaConfig:
        def path(value: Path | None) -> str | None:
            return None if value is None else str(value)

        return cls(
            bootstrap=settings.kafka_bootstrap_servers,
            client_id=settings.app_id,
            security_protocol=settings.kafka_security_protocol,
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_username=settings.kafka_sasl_username,
            sasl_password=settings.kafka_sasl_password.get_secret_value(),
            ssl_ca_location=path(settings.kafka_ssl_ca_location),
            ssl_certificate_location=path(settings.kafka_ssl_certificate_location),
            ssl_key_location=path(settings.kafka_ssl_key_location),
            ssl_key_password=settings.kafka_ssl_key_password.get_secret_value(),
            ssl_check_hostname=settings.kafka_ssl_endpoint_identification_algorithm == "https",
        )

    @property
    def servers(self) -> list[str]:
        return [server.strip() for server in self.bootstrap.split(",") if server.strip()]

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def principal(self) -> str:
        """Who the brokers see, as far as the client knows it: for ACLs and error messages."""
        if self.uses_sasl:
            return f"User:{self.sasl_username}"
        if self.uses_tls and self.ssl_certificate_location:
            return f"the certificate {self.ssl_certificate_location}"
        return "User:ANONYMOUS"

    def librdkafka(self, **properties: Any) -> dict[str, Any]:
        """A librdkafka configuration: the connection's properties, then the caller's."""
        config: dict[str, Any] = {
            "bootstrap.servers": ",".join(self.servers),
            "client.id": self.client_id,
            "socket.timeout.ms": SOCKET_TIMEOUT_MS,
            # librdkafka otherwise prints its background-queue notes at exit
            "log_level": 3,
            "security.protocol": self.security_protocol.lower(),
        }
        if self.uses_sasl:
            config["sasl.mechanism"] = self.sasl_mechanism  # its default is GSSAPI
            config["sasl.username"] = self.sasl_username
            config["sasl.password"] = self.sasl_password
        if self.uses_tls:
            if self.ssl_ca_location:  # else the system's trust store
                config["ssl.ca.location"] = self.ssl_ca_location
            if self.ssl_certificate_location:
                config["ssl.certificate.location"] = self.ssl_certificate_location
                config["ssl.key.location"] = self.ssl_key_location
                if self.ssl_key_password:
                    config["ssl.key.password"] = self.ssl_key_password
            config["ssl.endpoint.identification.algorithm"] = (
                "https" if self.ssl_check_hostname else "none"
            )
        return {**config, **properties}

    def ssl_context(self) -> ssl.SSLContext | None:
        """Python's TLS context for aiokafka and Faust: the same CA, client certificate and
        host check as librdkafka's; None without TLS."""
        if not self.uses_tls:
            return None
        context = ssl.create_default_context(cafile=self.ssl_ca_location)
        context.check_hostname = self.ssl_check_hostname
        if self.ssl_certificate_location:
            context.load_cert_chain(
                self.ssl_certificate_location,
                self.ssl_key_location,
                self.ssl_key_password or None,
            )
        return context

    def aiokafka(self, **options: Any) -> dict[str, Any]:
        """Keyword arguments for an aiokafka client: the connection's, then the caller's."""
        config: dict[str, Any] = {
            "bootstrap_servers": self.servers,
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
        }
        if self.uses_sasl:
            config.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.sasl_password,
            )
        if self.uses_tls:
            config["ssl_context"] = self.ssl_context()
        return {**config, **options}

    def faust_credentials(self) -> Any:
        """Faust's `broker_credentials`: every aiokafka client Faust makes gets them."""
        import faust

        context = self.ssl_context()
        if self.uses_sasl:
            return faust.SASLCredentials(
                username=self.sasl_username,
                password=self.sasl_password,
                ssl_context=context,
                mechanism=self.sasl_mechanism,
            )
        return context  # a bare context is Faust's SSL credentials; None: plaintext

    def faust_brokers(self, scheme: str) -> list[str]:
        """The worker's broker URLs; the scheme picks omnihooks' transport (engine/transport)."""
        return [f"{scheme}://{server}" for server in self.servers]


# -- connecting ----------------------------------------------------------------------------


def check_connection(config: KafkaConfig, timeout_s: float = 20.0) -> bool:
    """Connect once, as every command and worker does before its own clients: a refused
    login or certificate raises KafkaAccessError with its cause (neither stack would stop
    retrying). True once a broker answered; False if none did (a broker down or starting:
    the clients' own retries are right for that), without waiting long for a broker that
    plainly refuses connections."""
    from confluent_kafka import KafkaException

    _checked.add(config)
    errors: list[Any] = []
    # Quiet: librdkafka would print each failed attempt; the cause is reported once, here.
    client = admin(config, check=False, error_cb=errors.append, log_level=0)
    started = time.monotonic()
    while True:
        try:
            client.list_topics(timeout=max(0.2, min(1.0, started + timeout_s - time.monotonic())))
            return True
        except KafkaException:
            pass
        client.poll(0.1)  # serves error_cb
        for error in errors:
            cause = access.refusal(config, error.code(), error.str())
            if cause is not None:
                raise KafkaAccessError(cause)
        waited = time.monotonic() - started
        # A refusal shows within the first attempt's handshake; only errors of another kind
        # (connection refused, unknown host) after a few seconds: the broker is not there.
        if waited >= timeout_s or (errors and waited >= UNREACHABLE_AFTER_S):
            seen = f": {errors[-1].str()}" if errors else ""
            log.warning("no Kafka broker at %s answered%s", config.bootstrap, seen)
            return False


# Connections checked in this process (`check_connection`), so each is checked once.
_checked: set[KafkaConfig] = set()
UNREACHABLE_AFTER_S = 3.0


def _check_once(config: KafkaConfig) -> None:
    if config not in _checked:
        check_connection(config)


def missing_topics(config: KafkaConfig, names: list[str], timeout_s: float = 30.0) -> list[str]:
    """Which of `names` do not exist. A topic the principal may not describe raises
    KafkaAccessError naming it: under ACLs, "not there" and "not yours" look alike."""
    from confluent_kafka import KafkaError

    client = admin(config)
    missing = []
    for name in names:
        found = client.list_topics(name, timeout=timeout_s).topics.get(name)
        error = None if found is None else found.error
        if access.is_authorization(error):
            raise access.authorization(config, error, "describe", name)
        if found is None or (
            error is not None and error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
        ):
            missing.append(name)
    return missing


def check_group_access(config: KafkaConfig, group: str, timeout_s: float = 30.0) -> None:
    """Raise KafkaAccessError if the principal may not use consumer group `group` (asking
    for its committed offsets needs the same ACL's implied describe right)."""
    from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException

    client = admin(config)
    request = [ConsumerGroupTopicPartitions(group)]
    for future in client.list_consumer_group_offsets(request, request_timeout=timeout_s).values():
        try:
            future.result()
        except KafkaException as exc:
            if access.is_authorization(exc.args[0]):
                raise access.authorization(config, exc.args[0], "read", group) from None
            raise


async def check_aiokafka_connection(config: KafkaConfig, timeout_s: float = 20.0) -> None:
    """The same for aiokafka's own connection code (Faust's consumer and producer): a login
    or certificate it refuses raises KafkaAccessError, where aiokafka itself would only say
    "Unable to bootstrap"."""
    from aiokafka.conn import create_conn
    from aiokafka.errors import KafkaError

    options = config.aiokafka()
    host, _, port = config.servers[0].rpartition(":")
    try:
        conn = await asyncio.wait_for(
            create_conn(
                host, int(port), client_id=config.client_id,
                security_protocol=options["security_protocol"],
                ssl_context=options.get("ssl_context"),
                sasl_mechanism=options.get("sasl_mechanism", "PLAIN"),
                sasl_plain_username=options.get("sasl_plain_username"),
                sasl_plain_password=options.get("sasl_plain_password"),
            ),
            timeout_s,
        )  # fmt: skip
    except (OSError, KafkaError, TimeoutError) as exc:
        cause = access.aiokafka_refusal(config, exc)
        if cause is not None:
            raise KafkaAccessError(cause) from None
        return  # unreachable for now: Faust's clients retry as they do
    conn.close()


# -- confluent-kafka ---------------------------------------------------------------------


def producer(config: KafkaConfig, **properties: Any) -> Producer:
    """An acks=all, idempotent producer: a write survives a broker's loss and is not doubled
    by the producer's own retries."""
    from confluent_kafka import Producer

    _check_once(config)
    return Producer(config.librdkafka(**{"acks": "all", "enable.idempotence": True, **properties}))


def reader(config: KafkaConfig, **properties: Any) -> Consumer:
    """A consumer that is assigned partitions and joins no group: it commits nothing and
    touches no worker's offsets. librdkafka wants a group id all the same; a reader's is
    `<client id>-reader-<random>`, so one prefixed ACL covers every reader."""
    from confluent_kafka import Consumer

    _check_once(config)
    group = f"{config.client_id}-reader-{uuid.uuid4().hex[:8]}"
    # Quiet: what goes wrong reaches the reader as an error record; librdkafka's own lines
    # (its group coordinator's connection torn down at close) would only add noise.
    settings = {"group.id": group, "enable.auto.commit": False, "enable.partition.eof": True,
                "log_level": 0}  # fmt: skip
    return Consumer(config.librdkafka(**settings, **properties))


def group_consumer(
    config: KafkaConfig, group: str, check: bool = True, **properties: Any
) -> Consumer:
    """A consumer in `group` (tools that follow a topic as a group member would)."""
    from confluent_kafka import Consumer

    if check:
        _check_once(config)
    return Consumer(config.librdkafka(**{"group.id": group, **properties}))


def admin(config: KafkaConfig, check: bool = True, **properties: Any) -> AdminClient:
    """An admin client; the first client of a connection checks it (`check_connection`)
    unless `check` is off (a client that is itself a check)."""
    from confluent_kafka.admin import AdminClient

    if check:
        _check_once(config)
    return AdminClient(config.librdkafka(**properties))


# -- aiokafka ----------------------------------------------------------------------------


def aio_reader(config: KafkaConfig, **options: Any) -> AIOKafkaConsumer:
    """aiokafka's consumer with no group: assigned, read from the start, never committed."""
    from aiokafka import AIOKafkaConsumer

    return AIOKafkaConsumer(
        **config.aiokafka(
            group_id=None, enable_auto_commit=False, auto_offset_reset="earliest", **options
        )
    )


_APP_CONFIGS: weakref.WeakKeyDictionary[Any, KafkaConfig] = weakref.WeakKeyDictionary()


def attach(app: Any, config: KafkaConfig) -> None:
    """Keep the worker's connection beside its Faust app: the transport's librdkafka
    producers are made by Faust, from the app, and need the same connection."""
    _APP_CONFIGS[app] = config


def config_of(app: Any) -> KafkaConfig:
    return _APP_CONFIGS[app]


# -- acknowledgements --------------------------------------------------------------------


class Acknowledgements:
    """librdkafka's delivery reports for the records handed to it: each gets a number, and
    is out until its report comes; a failed report is kept until someone asks."""

    def __init__(self) -> None:
        self._pending: dict[int, None] = {}
        self._failed: list[tuple[str, Any]] = []  # (topic[partition], librdkafka's error)
        self.last = 0

    def track(self, on_report: Report | None = None) -> Report:
        """The `on_delivery` callback for the next record; `on_report` runs after it."""
        self.last = seq = self.last + 1
        self._pending[seq] = None

        def report(err: Any, msg: Any) -> None:
            del self._pending[seq]
            if err is not None:
                self._failed.append((f"{msg.topic()}[{msg.partition()}]", err))
            if on_report is not None:
                on_report(err, msg)

        return report

    @property
    def pending(self) -> int:
        return len(self._pending)

    def out_up_to(self, seq: int) -> bool:
        """Whether a record numbered `seq` or lower is still without its report."""
        return bool(self._pending) and next(iter(self._pending)) <= seq

    def raise_failed(self, what: str, config: KafkaConfig | None = None) -> None:
        """If any record was refused: KafkaAccessError for a missing right (with `config`,
        naming the principal), else KafkaWriteError naming the first refusal."""
        if not self._failed:
            return
        where, error = self._failed[0]
        if config is not None and access.is_authorization(error):
            raise access.authorization(config, error, "write", where.rpartition("[")[0])
        raise KafkaWriteError(
            f"{what}: {len(self._failed)} records refused by Kafka (first: {where}: {error.str()})"
        )


def produce(rd: Producer, topic: str, key: bytes | None, value: bytes | None, **args: Any) -> None:
    """Hand a record to librdkafka, serving reports while its queue is full."""
    while True:
        try:
            rd.produce(topic, value, key, **args)
            return
        except BufferError:
            rd.poll(0.05)


class Writer:
    """A producer for commands run by hand (`dlq replay`, `endpoints add`): `write` hands
    records over, `flush` returns once every one is acknowledged, else raises."""

    def __init__(self, config: KafkaConfig, **properties: Any) -> None:
        self.config = config
        self._producer = producer(config, **properties)
        self._acks = Acknowledgements()

    def write(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None
    ) -> None:
        from confluent_kafka import KafkaException

        where = {} if partition is None else {"partition": partition}
        try:
            produce(self._producer, topic, key, value, on_delivery=self._acks.track(), **where)
        except KafkaException as exc:  # a topic already known to be refused fails at once
            if access.is_authorization(exc.args[0]):
                raise access.authorization(self.config, exc.args[0], "write", topic) from None
            raise
        self._producer.poll(0)

    def flush(self, timeout_s: float = WRITE_TIMEOUT_S) -> None:
        left = self._producer.flush(timeout_s)
        self._acks.raise_failed("not written", self.config)
        if left or self._acks.pending:
            raise KafkaWriteError(
                f"not written: {self._acks.pending} records not acknowledged within "
                f"{timeout_s:.0f} s"
            )


def write_one(config: KafkaConfig, topic: str, key: bytes, value: bytes | None) -> None:
    """One record (None: a tombstone), acknowledged by every in-sync replica, or an error."""
    writer = Writer(config)
    writer.write(topic, key, value)
    writer.flush()


class AsyncWriter:
    """A producer for an asyncio server (`omnihooks ingest`): `write` returns once the
    brokers have the record. Reports are served by a polling thread and handed to the loop."""

    def __init__(self, config: KafkaConfig, timeout_s: float, **properties: Any) -> None:
        self.config = config
        # A write not acknowledged by message.timeout.ms fails; the margin covers a stalled poll.
        self._producer = producer(
            config, **{"message.timeout.ms": int(timeout_s * 1000), **properties}
        )
        self._acks = Acknowledgements()
        self.timeout_s = timeout_s
        self._running = True
        self._thread = threading.Thread(target=self._poll, name="kafka-acks", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while self._running:
            try:
                self._producer.poll(0.05)
            except Exception:  # a callback failing must not stop every acknowledgement
                log.exception("acknowledging a write failed")

    async def write(
        self,
        topic: str,
        key: bytes,
        value: bytes,
        headers: list[tuple[str, str | bytes | None]] | None = None,
    ) -> None:
        """Return once the brokers have the record; KafkaWriteError if they cannot take it."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def acknowledged(err: Any, _msg: Any) -> None:
            def settle() -> None:
                if done.done():
                    return
                if err is None:
                    done.set_result(None)
                elif access.is_authorization(err):
                    done.set_exception(access.authorization(self.config, err, "write", topic))
                else:
                    done.set_exception(KafkaWriteError(f"{topic}: {err.str()}"))

            loop.call_soon_threadsafe(settle)

        from confluent_kafka import KafkaException

        try:
            self._producer.produce(topic, value, key, headers=headers,
                                   on_delivery=self._acks.track(acknowledged))  # fmt: skip
        except (BufferError, KafkaException) as exc:  # queue full, or the producer failed
            raise KafkaWriteError(f"{topic}: {exc}") from None
        try:
            await asyncio.wait_for(done, self.timeout_s + 5)
        except TimeoutError:
            raise KafkaWriteError(f"{topic}: no acknowledgement from the producer") from None

    def close(self) -> None:
        self._running = False
        self._thread.join(5)
        self._producer.flush(10)


# -- reading a topic whole ------------------------------------------------------------


def watermarks(consumer: Any, tp: Any, timeout_s: float = 15.0) -> tuple[int, int]:
    """The partition's low and high offsets. Right after `topics apply` the broker may not
    know the partition's leader yet (NOT_LEADER_FOR_PARTITION): a retriable error, retried."""
    from confluent_kafka import KafkaError, KafkaException

    leaderless = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
                  KafkaError.UNKNOWN_TOPIC_OR_PART}  # fmt: skip
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            low, high = consumer.get_watermark_offsets(tp, timeout=timeout_s)
            return int(low), int(high)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if error is None or error.code() not in leaderless or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def read_all(config: KafkaConfig, topic: str) -> list[Any]:
    """Every record of `topic` as it is now, each partition from its start to its end, in a
    consumer that joins no group and commits nothing."""
    return read_from(config, topic, lambda _partition, low, _high: low)


def _partitions_of(consumer: Any, config: KafkaConfig, topic: str) -> list[int]:
    """The topic's partitions, or an error saying it is missing or not ours to see."""
    found = consumer.list_topics(topic, timeout=15).topics.get(topic)
    if found is not None and access.is_authorization(found.error):
        raise access.authorization(config, found.error, "describe", topic)
    if found is None or found.error is not None or not found.partitions:
        raise RuntimeError(f"topic {topic} does not exist (run `omnihooks topics apply`)")
    return sorted(found.partitions)


def partition_count(config: KafkaConfig, topic: str) -> int:
    consumer = reader(config)
    try:
        return len(_partitions_of(consumer, config, topic))
    finally:
        consumer.close()


def end_offsets(config: KafkaConfig, topic: str) -> dict[int, int]:
    """Each partition's end (its high offset) as it is now."""
    from confluent_kafka import TopicPartition

    consumer = reader(config)
    try:
        return {p: watermarks(consumer, TopicPartition(topic, p))[1]
                for p in _partitions_of(consumer, config, topic)}  # fmt: skip
    finally:
        consumer.close()


# Where to start reading a partition, given its number and its low and high offsets.
StartAt = Callable[[int, int, int], int]


def read_from(config: KafkaConfig, topic: str, start_at: StartAt) -> list[Any]:
    """The records of `topic` from `start_at` to each partition's end as it is now."""
    from confluent_kafka import KafkaError, TopicPartition

    consumer = reader(config)
    try:
        wanted = []
        for partition in _partitions_of(consumer, config, topic):
            low, high = watermarks(consumer, TopicPartition(topic, partition))
            first = max(low, start_at(partition, low, high))
            if high > first:
                wanted.append((partition, first, high))
        consumer.assign([TopicPartition(topic, p, low) for p, low, _ in wanted])
        ends: dict[int | None, int] = {partition: high for partition, _, high in wanted}
        records: list[Any] = []
        deadline = time.monotonic() + 120
        while ends and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                # End of a partition (as it was when we looked): done with it. Compaction
                # leaves offset gaps, so the error, not an offset, says where the end is.
                if error.code() == KafkaError._PARTITION_EOF:
                    ends.pop(message.partition(), None)
                elif access.is_authorization(error):
                    name = topic if error.code() != 30 else "its reader group"
                    raise access.authorization(config, error, "read", name)
                continue
            records.append(message)
        if ends:
            raise RuntimeError(f"could not read {topic} to its end within 120 s")
        return records
    finally:
        consumer.close()

"""Every Kafka client omnihooks makes, built in one place from one `KafkaConfig`.

confluent-kafka (librdkafka) producers, consumers and admin clients, aiokafka consumers, and
the options Faust hands its own aiokafka clients all start from `KafkaConfig`, so a setting
that every connection needs (the brokers, the client id, later TLS and SASL) is applied once.

librdkafka reports each write in a callback, from whatever thread polls the producer.
`Acknowledgements` is the one bookkeeping of those reports: which records are still out and
which failed. Writers built on it never report success for a record the brokers refused (a
missing ACL, a record too large): `KafkaWriteError` names the topic and the broker's reason.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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
    """How to reach the cluster: what every client of every stack is built from."""

    bootstrap: str
    client_id: str = "omnihooks"

    @classmethod
    def of(cls, settings: Settings) -> KafkaConfig:
        return cls(settings.kafka_bootstrap_servers, settings.app_id)

    @property
    def servers(self) -> list[str]:
        return [server.strip() for server in self.bootstrap.split(",") if server.strip()]

    def librdkafka(self, **properties: Any) -> dict[str, Any]:
        """A librdkafka configuration: the connection's properties, then the caller's."""
        return {
            "bootstrap.servers": ",".join(self.servers),
            "client.id": self.client_id,
            "socket.timeout.ms": SOCKET_TIMEOUT_MS,
            # librdkafka otherwise prints its background-queue notes at exit
            "log_level": 3,
            **properties,
        }

    def aiokafka(self, **options: Any) -> dict[str, Any]:
        """Keyword arguments for an aiokafka client: the connection's, then the caller's."""
        return {"bootstrap_servers": self.servers, "client_id": self.client_id, **options}

    def faust_brokers(self, scheme: str) -> list[str]:
        """The worker's broker URLs; the scheme picks omnihooks' transport (engine/transport)."""
        return [f"{scheme}://{server}" for server in self.servers]


# -- confluent-kafka ---------------------------------------------------------------------


def producer(config: KafkaConfig, **properties: Any) -> Producer:
    """An acks=all, idempotent producer: a write survives a broker's loss and is not doubled
    by the producer's own retries."""
    from confluent_kafka import Producer

    return Producer(config.librdkafka(**{"acks": "all", "enable.idempotence": True, **properties}))


def reader(config: KafkaConfig, **properties: Any) -> Consumer:
    """A consumer that is assigned partitions and joins no group: it commits nothing and
    touches no worker's offsets. librdkafka wants a group id all the same; a reader's is
    `<client id>-reader-<random>`, so one prefixed ACL covers every reader."""
    from confluent_kafka import Consumer

    group = f"{config.client_id}-reader-{uuid.uuid4().hex[:8]}"
    return Consumer(
        config.librdkafka(
            **{"group.id": group, "enable.auto.commit": False, "enable.partition.eof": True},
            **properties,
        )
    )


def group_consumer(config: KafkaConfig, group: str, **properties: Any) -> Consumer:
    """A consumer in `group` (tools that follow a topic as a group member would)."""
    from confluent_kafka import Consumer

    return Consumer(config.librdkafka(**{"group.id": group, **properties}))


def admin(config: KafkaConfig, **properties: Any) -> AdminClient:
    from confluent_kafka.admin import AdminClient

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
        self._failed: list[str] = []
        self.last = 0

    def track(self, on_report: Report | None = None) -> Report:
        """The `on_delivery` callback for the next record; `on_report` runs after it."""
        self.last = seq = self.last + 1
        self._pending[seq] = None

        def report(err: Any, msg: Any) -> None:
            del self._pending[seq]
            if err is not None:
                self._failed.append(f"{msg.topic()}[{msg.partition()}]: {err.str()}")
            if on_report is not None:
                on_report(err, msg)

        return report

    @property
    def pending(self) -> int:
        return len(self._pending)

    def out_up_to(self, seq: int) -> bool:
        """Whether a record numbered `seq` or lower is still without its report."""
        return bool(self._pending) and next(iter(self._pending)) <= seq

    def raise_failed(self, what: str) -> None:
        """KafkaWriteError naming the first refusal, if any record was refused."""
        if self._failed:
            raise KafkaWriteError(
                f"{what}: {len(self._failed)} records refused by Kafka (first: {self._failed[0]})"
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
        self._producer = producer(config, **properties)
        self._acks = Acknowledgements()

    def write(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        produce(self._producer, topic, key, value, on_delivery=self._acks.track())
        self._producer.poll(0)

    def flush(self, timeout_s: float = WRITE_TIMEOUT_S) -> None:
        left = self._producer.flush(timeout_s)
        self._acks.raise_failed("not written")
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

    async def write(self, topic: str, key: bytes, value: bytes) -> None:
        """Return once the brokers have the record; KafkaWriteError if they cannot take it."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def acknowledged(err: Any, _msg: Any) -> None:
            def settle() -> None:
                if done.done():
                    return
                if err is None:
                    done.set_result(None)
                else:
                    done.set_exception(KafkaWriteError(f"{topic}: {err.str()}"))

            loop.call_soon_threadsafe(settle)

        from confluent_kafka import KafkaException

        try:
            self._producer.produce(topic, value, key, on_delivery=self._acks.track(acknowledged))
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


# Where to start reading a partition, given its number and its low and high offsets.
StartAt = Callable[[int, int, int], int]


def read_from(config: KafkaConfig, topic: str, start_at: StartAt) -> list[Any]:
    """The records of `topic` from `start_at` to each partition's end as it is now."""
    from confluent_kafka import KafkaError, TopicPartition

    consumer = reader(config)
    try:
        metadata = consumer.list_topics(topic, timeout=15)
        if topic not in metadata.topics or metadata.topics[topic].error is not None:
            raise RuntimeError(f"topic {topic} does not exist (run `omnihooks topics apply`)")
        wanted = []
        for partition in metadata.topics[topic].partitions:
            low, high = watermarks(consumer, TopicPartition(topic, partition))
            first = max(low, start_at(partition, low, high))
            if high > first:
                wanted.append((partition, first, high))
        consumer.assign([TopicPartition(topic, p, low) for p, low, _ in wanted])
        ends = {partition: high for partition, _, high in wanted}
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
                continue
            records.append(message)
        if ends:
            raise RuntimeError(f"could not read {topic} to its end within 120 s")
        return records
    finally:
        consumer.close()

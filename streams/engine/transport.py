"""Faust's aiokafka transport with omnihooks' consumer and an idempotent, acks=all producer
whose flush waits for every record it was handed.

Faust turns idempotence on only inside transactions. Every job, dead letter and changelog
record we write should survive a broker restart without being lost (acks=all) or doubled by
the producer's own retries (idempotence), so the worker's broker URLs use this transport
(scheme `omnihooks://`, registered as a `faust.transports` entry point).

A table write goes to its changelog through Faust's producer buffer (`send_soon`), and Faust
commits input offsets after `producer.flush()`. That flush gives up after 0.1 s without a
record leaving the buffer, and misses the record its sender task already took from the
queue but had not yet handed to aiokafka: a commit then passes an input record whose state
change never reached the changelog, and a worker killed right after loses that change for
good (the kill test's room closed without its two messages). Here `flush` returns only once
every record handed to `send_soon` before it was called is acknowledged by the brokers.

`OMNIHOOKS_PRODUCER=librdkafka` sends the same records through confluent-kafka's producer
(transport `omnihooks-rdkafka://`) while the consumer stays on
aiokafka: librdkafka batches and encodes in its own C threads, where aiokafka's sender does
it in Python on the event loop. Same guarantees: acks=all, idempotence, murmur2 partitioning
(the Java client's and aiokafka's, so keyed records land where aiokafka would put them), and
the same flush. aiokafka's producer stays up beside it for Faust's topic declarations.

Table writes (`produce_state`) go through a second librdkafka producer that lingers
`STATE_LINGER_MS`: nothing waits on a changelog record but the next commit, so its records
can ride in few large requests. With the settled-jobs table, a delivery worker writes a
changelog record per job, and at the jobs' 5 ms linger those made many small acks=all
requests: the broker's CPU rose, and the delivery p99 with it, on a two-core machine. At
`STATE_LINGER_MS` the broker cost what it did without the table (docs/history.md).
A deferred table (`DirectTable(deferred=True)`) hands its records over only when a flush
starts (`before_flush`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import confluent_kafka
from aiokafka.structs import RecordMetadata, TopicPartition
from faust.exceptions import ProducerSendError
from faust.transport.drivers import aiokafka as driver

from streams.engine import kafka
from streams.engine.access import KafkaAccessError
from streams.engine.consumer import OrderedConsumer

# A changelog record not acknowledged by then fails the commit (the worker restarts and
# reads the records again) rather than committing past state that may be lost.
FLUSH_TIMEOUT_S = 120.0
# How long a table write may wait to be batched; a commit (every second) waits for it too.
STATE_LINGER_MS = 50


class UnflushedWrites(RuntimeError):
    """Records handed to the producer were not acknowledged: no offset may pass them."""


class IdempotentProducer(driver.Producer):
    _handed: set[asyncio.Future[Any]]

    def _settings_extra(self) -> Mapping[str, Any]:
        return {"acks": "all", "enable_idempotence": True}

    def __post_init__(self) -> None:
        super().__post_init__()
        self._handed = set()

    def send_soon(self, fut: Any) -> None:
        self._handed.add(fut)
        fut.add_done_callback(self._handed.discard)
        super().send_soon(fut)

    async def flush(self) -> None:
        handed = list(self._handed)
        await super().flush()
        await _acknowledged(handed)


async def _acknowledged(futures: list[asyncio.Future[Any]]) -> None:
    """Wait for every future to succeed, or raise: no offset may pass a record not on the
    brokers."""
    if futures:
        done, waiting = await asyncio.wait(futures, timeout=FLUSH_TIMEOUT_S)
        failed = [fut for fut in done if fut.cancelled() or fut.exception() is not None]
        if waiting or failed:
            raise UnflushedWrites(
                f"{len(waiting)} records not acknowledged after {FLUSH_TIMEOUT_S:.0f} s, "
                f"{len(failed)} failed: not committing past them"
            )


class RdKafkaProducer(IdempotentProducer):
    """Faust's producer interface over confluent-kafka, and `produce`, a synchronous send for
    the engine's job sends (`produce_state` for its table writes): one C call, no
    `FutureMessage`, no buffer task.

    Delivery reports are served on the event loop (`poll(0)` every millisecond while records
    are out), so nothing crosses threads. Each record gets a sequence number, whichever of the
    two producers sends it; `flush` waits until every record produced before it was called is
    reported, and raises if any failed.
    """

    _rd: confluent_kafka.Producer | None = None
    _rd_state: confluent_kafka.Producer | None = None
    _acks: kafka.Acknowledgements

    def __post_init__(self) -> None:
        super().__post_init__()
        self._acks = kafka.Acknowledgements()
        self._before_flush: list[Callable[[], None]] = []
        self._reported = asyncio.Event()
        self._poller: asyncio.Task[None] | None = None

    def _rd_config(self) -> dict[str, Any]:
        return {
            "client.id": f"{self.client_id}-rdkafka",
            "partitioner": "murmur2_random",
            "linger.ms": max(1, int(self.linger_ms)),
            "batch.size": self.max_batch_size,
            "message.max.bytes": self.max_request_size,
            "queue.buffering.max.messages": 1_000_000,
            "request.timeout.ms": min(900_000, int(self.request_timeout * 1000)),  # its maximum
        }

    async def on_start(self) -> None:
        await super().on_start()
        config, connection = self._rd_config(), kafka.config_of(self.transport.app)
        self._rd = kafka.producer(connection, **config)
        self._rd_state = kafka.producer(
            connection,
            **{**config, "client.id": f"{config['client.id']}-state", "linger.ms": STATE_LINGER_MS},
        )
        self._poller = asyncio.create_task(self._serve_reports(), name="rdkafka-reports")

    async def on_stop(self) -> None:
        if self._rd is not None:
            await self._wait_reported(self._acks.last)
            self._rd = self._rd_state = None
        if self._poller is not None:
            self._poller.cancel()
        await super().on_stop()

    def produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None = None,
        on_report: Any = None,
    ) -> None:
        """Hand a record to librdkafka now; `on_report(error, message)` runs once the brokers
        have it or it failed. A failure also fails every later flush: an offset must never
        be committed past a lost record, so the worker stops and reads it again."""
        self._produce(self._rd, topic, key, value, partition, on_report)

    def produce_state(
        self, topic: str, key: bytes, value: bytes | None, partition: int, on_report: Any = None
    ) -> None:
        """`produce` for a changelog record: batched longer (`STATE_LINGER_MS`), awaited by
        the next flush all the same."""
        self._produce(self._rd_state, topic, key, value, partition, on_report)

    def _produce(
        self,
        rd: confluent_kafka.Producer | None,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        on_report: Any,
    ) -> None:
        if rd is None:
            raise ProducerSendError("producer not started")
        args: dict[str, Any] = {"on_delivery": self._acks.track(on_report)}
        if partition is not None:
            args["partition"] = partition
        kafka.produce(rd, topic, key, value, **args)

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
        *,
        transactional_id: str | None = None,
    ) -> Any:
        fut: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()

        def report(err: Any, msg: Any) -> None:
            if fut.done():
                return
            if err is not None:
                fut.set_exception(ProducerSendError(f"Error while sending: {err}"))
                return
            topic, partition = msg.topic(), msg.partition()
            tp = TopicPartition(topic, partition)
            fut.set_result(RecordMetadata(topic, partition, tp, msg.offset(), -1, 0, -1))

        if headers:
            # Faust's own sends (none of omnihooks') may carry headers: aiokafka keeps them.
            return await super().send(topic, key, value, partition, timestamp, headers)
        self.produce(topic, key, value, partition, report)
        return fut

    async def _serve_reports(self) -> None:
        rd, rd_state = self._rd, self._rd_state
        assert rd is not None and rd_state is not None
        while True:
            rd.poll(0)
            rd_state.poll(0)
            self._reported.set()
            await asyncio.sleep(0.001 if self._acks.pending else 0.02)

    async def _wait_reported(self, upto: int) -> None:
        deadline = asyncio.get_running_loop().time() + FLUSH_TIMEOUT_S
        while self._acks.out_up_to(upto):
            if asyncio.get_running_loop().time() > deadline:
                raise UnflushedWrites(
                    f"records not acknowledged after {FLUSH_TIMEOUT_S:.0f} s: "
                    "not committing past them"
                )
            self._reported.clear()
            await self._reported.wait()

    def before_flush(self, send: Callable[[], None]) -> None:
        """Run `send` at the start of every flush: it hands over records held back until then
        (a deferred table's changelog), which the flush then waits for like any other."""
        self._before_flush.append(send)

    async def flush(self) -> None:
        for send in self._before_flush:
            send()
        upto = self._acks.last
        await super().flush()
        await self._wait_reported(upto)
        try:
            self._acks.raise_failed("not committing past them", kafka.config_of(self.transport.app))
        except (kafka.KafkaWriteError, KafkaAccessError) as exc:
            raise UnflushedWrites(str(exc)) from None


class Transport(driver.Transport):
    Producer = IdempotentProducer
    Consumer = OrderedConsumer


class RdKafkaTransport(driver.Transport):
    Producer = RdKafkaProducer
    Consumer = OrderedConsumer

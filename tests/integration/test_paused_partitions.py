"""A partition Faust pauses is paused in aiokafka too, and loses nothing by it.

Faust's `pause_partitions` only stops asking for a partition: aiokafka goes on fetching it,
and the batch nobody takes holds back every later fetch from that broker for aiokafka's
prefetch backoff (0.1 s). A worker's own table writes land in exactly such a partition (an
active table's changelog), so delivery p99 carried that 0.1 s. `streams.engine.consumer.
mirror_pauses` pauses the partition in aiokafka and drops the batch; here a real broker and
a real aiokafka consumer show the batch comes back, every record of it, once resumed.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from faust.types import TP

from streams.engine.consumer import mirror_pauses
from tests.conftest import Broker

pytestmark = pytest.mark.integration


def produce(bootstrap: str, topic: str, partition: int, values: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for value in values:
        producer.produce(topic, value, partition=partition)
    assert producer.flush(30) == 0


async def take(consumer: AIOKafkaConsumer, tp: TopicPartition, count: int) -> list[bytes]:
    taken: list[bytes] = []
    deadline = time.monotonic() + 30
    while len(taken) < count and time.monotonic() < deadline:
        batch = await consumer.getmany(tp, timeout_ms=500)
        taken += [record.value for record in batch.get(tp, [])]
    return taken


async def test_a_paused_partition_stops_fetching_and_is_read_whole_after_resume(
    kafka: Broker, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}paused"
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(timeout=30)
    first, second = TopicPartition(topic, 0), TopicPartition(topic, 1)
    produce(kafka.bootstrap, topic, 0, [b"a0", b"a1"])
    produce(kafka.bootstrap, topic, 1, [b"b0", b"b1", b"b2"])

    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap, enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    try:
        consumer.assign([first, second])
        await consumer.seek_to_beginning(first, second)
        assert await take(consumer, first, 2) == [b"a0", b"a1"]
        fetcher = consumer._fetcher
        deadline = time.monotonic() + 30
        while second not in fetcher._records and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)  # no event tells: the batch fetched but not taken
        assert second in fetcher._records

        mirror_pauses(consumer, frozenset({TP(topic, 1)}))  # Faust's TP, as Faust pauses it
        assert consumer.paused() == {second}
        assert second not in fetcher._records, "the batch nobody takes is still held"
        assert await consumer.position(second) == 0, "dropping the batch moved the position"

        produce(kafka.bootstrap, topic, 1, [b"b3"])
        produce(kafka.bootstrap, topic, 0, [b"a2"])
        assert await take(consumer, first, 1) == [b"a2"]
        assert second not in fetcher._records, "a paused partition was fetched"

        mirror_pauses(consumer, frozenset())
        assert consumer.paused() == set()
        assert await take(consumer, second, 4) == [b"b0", b"b1", b"b2", b"b3"]
    finally:
        await consumer.stop()

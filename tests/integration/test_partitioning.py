"""A chat stack whose partitioner is not Kafka's Java default: librdkafka's (CRC32) puts a room's
records in another partition than omnihooks' own hash (murmur2) would. What omnihooks writes
back for the room (the close's grace event, the CRM's answer) must follow the room's records,
or the room's state splits across two changelog partitions and, after a rebalance, a close
is sent without some of its messages (seen in the scaling test under load)."""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable

import pytest
from aiokafka.partitioner import murmur2
from confluent_kafka import Consumer, Producer, TopicPartition

from streams import demo
from streams.settings import Settings
from tests.conftest import Broker
from tests.harness import WorkerProcess
from tests.receiver import Receiver
from topics.catalogue import Topic

pytestmark = pytest.mark.integration


def crc32_partition(key: bytes, partitions: int) -> int:
    return zlib.crc32(key) % partitions  # librdkafka's default ("consistent_random")


def murmur2_partition(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions  # Kafka's Java client, aiokafka, Faust


def partitions_of(kafka: Broker, topic: str, key: bytes) -> set[int]:
    consumer = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": f"p-{topic}"})
    try:
        count = len(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        found: set[int] = set()
        for partition in range(count):
            consumer.assign([TopicPartition(topic, partition, 0)])
            while (message := consumer.poll(1.0)) is not None:
                if not message.error() and message.key() == key:
                    found.add(partition)
        return found
    finally:
        consumer.close()


def test_grace_events_and_crm_data_follow_the_rooms_partition(
    kafka: Broker,
    settings_factory: Callable[..., Settings],
    applied_topics: dict[Topic, str],
    start_worker: Callable[..., WorkerProcess],
    receiver: Receiver,
) -> None:
    settings = settings_factory(
        webhook_url=receiver.url("/crm"),
        send_on_visitor_message=True,
        send_on_close=True,
        close_grace_s=2.0,
    )
    rooms_topic = applied_topics[Topic.ROOMS]
    admin = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": "count"})
    count = len(admin.list_topics(rooms_topic, timeout=10).topics[rooms_topic].partitions)
    admin.close()
    room = next(
        f"room-crc-{n}"
        for n in range(1000)
        if crc32_partition(f"room-crc-{n}".encode(), count)
        != murmur2_partition(f"room-crc-{n}".encode(), count)
    )
    key = room.encode()
    partition = crc32_partition(key, count)
    start_worker(settings, "all").wait_for_log("Worker ready", timeout_s=90)

    # The seed conversation without its second visitor message: the close counts four
    # messages, finds three and waits out its grace through an internal event.
    records = [r for r in demo.seed_conversation(room) if b"7xjkw8ZFitMSNGmeJ" not in r.encoded()]
    producer = Producer({"bootstrap.servers": kafka.bootstrap, "acks": "all"})
    for record in records:
        topic = f"{settings.topic_prefix}{record.topic.value}"
        producer.produce(topic, key=key, value=record.encoded(), partition=partition)
        producer.flush(30)
        time.sleep(0.05)

    got = receiver.wait_for("/crm", 3, timeout_s=90)  # two visitor messages and the close
    close = next(r.json() for r in got if r.json()["type"] == "LivechatSession")
    assert len(close["messages"]) == 3
    assert close["crmData"] == receiver.crm_answer.decode()
    assert partitions_of(kafka, rooms_topic, key) == {partition}  # the grace event too
    assert partitions_of(kafka, applied_topics[Topic.CRM_DATA], key) == {partition}

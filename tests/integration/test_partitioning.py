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
from confluent_kafka import Producer

from streams.dev import demo
from streams.settings import Settings
from tests.conftest import Broker
from tests.support.harness import TopicReader, WorkerProcess
from tests.support.receiver import Receiver
from topics.catalogue import Topic, load_catalogue

pytestmark = pytest.mark.integration


def crc32_partition(key: bytes, partitions: int) -> int:
    return zlib.crc32(key) % partitions  # librdkafka's default ("consistent_random")


def murmur2_partition(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions  # Kafka's Java client, aiokafka, Faust


def partitions_of(reader: TopicReader, key: bytes) -> set[int]:
    """The partitions holding records with `key`, once nothing new has arrived."""
    reader.settle()
    return {record.partition() for record in reader.records if record.key() == key}


def test_grace_events_and_crm_data_follow_the_rooms_partition(
    kafka: Broker,
    settings_factory: Callable[..., Settings],
    applied_topics: dict[Topic, str],
    start_worker: Callable[..., WorkerProcess],
    read_topic: Callable[[str], TopicReader],
    receiver: Receiver,
) -> None:
    settings = settings_factory(
        webhook_url=receiver.url("/crm"),
        send_on_visitor_message=True,
        send_on_close=True,
        close_grace_s=2.0,
        compat="rocketchat-7",
    )
    count = load_catalogue(settings.partitions)[Topic.ROOMS].partitions  # as applied_topics
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
    rooms = read_topic(applied_topics[Topic.ROOMS])
    assert partitions_of(rooms, key) == {partition}  # the grace event too
    crm_data = read_topic(applied_topics[Topic.CRM_DATA])
    assert partitions_of(crm_data, key) == {partition}

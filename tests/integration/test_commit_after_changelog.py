"""A commit never passes an input record whose table write is not yet on the changelog.

Faust commits input offsets after `producer.flush()`, which gives up after 0.1 s without a
record leaving its buffer. Here the buffer sends slowly (0.3 s a record, as a loaded worker or
a slow broker would); an agent writes one table key per record and finishes five records;
the consumer commits. The committed offset is then compared with the changelog records the
brokers acknowledged: a worker killed at that moment recovers only what the changelog holds
and reads again only what was not committed, so a committed record without its changelog
write is a state change lost for good. Stock Faust commits all five with writes still in the
buffer; omnihooks' transport (`streams.engine.transport`) waits for them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from faust.transport import producer as faust_producer

from streams import engine
from streams.app import Omnihooks, create_app
from streams.engine.transport import RdKafkaProducer
from streams.settings import Settings
from tests.conftest import Broker
from tests.integration.test_honest_acks import committed_offset, produce_numbered, wait_until
from tests.support.harness import create_changelogs_of
from topics.catalogue import Topic

pytestmark = pytest.mark.integration

RECORDS = 5
SEND_DELAY_S = 0.3


def end_offset(bootstrap: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "omnihooks-test-ends"})
    try:
        _low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        return int(high)
    finally:
        consumer.close()


def add_writer(omnihooks: Omnihooks, write: Callable[[bytes, bytes], None]) -> list[int]:
    """An agent on the offline-messages topic writing one key per record through `write` and
    finishing it; returns the offsets it finished, as it finishes them."""
    finished: list[int] = []

    async def agent(stream: Any) -> None:
        async for event in stream.noack().events():
            write(b"k%d" % event.message.offset, event.message.value)
            finished.append(event.message.offset)
            engine.finish(event)

    omnihooks.app.agent(omnihooks.topics[Topic.OFFLINE_MESSAGES], name="writer")(agent)
    return finished


async def every_record_finished(finished: list[int]) -> None:
    await wait_until(lambda: len(finished) == RECORDS, "the agent to finish every record",
                     lambda: f"finished {finished}", timeout_s=90)  # fmt: skip


@pytest.mark.parametrize(("transport", "all_written"), [("omnihooks", True), ("aiokafka", False)])
async def test_a_commit_waits_for_the_changelog_writes_of_the_records_it_passes(
    kafka: Broker,
    settings_factory: Callable[..., Settings],
    applied_topics: dict[Topic, str],
    monkeypatch: pytest.MonkeyPatch,
    transport: str,
    all_written: bool,
) -> None:
    send_pending = faust_producer.ProducerBuffer._send_pending

    async def slow_send_pending(self: Any, fut: Any) -> None:
        await asyncio.sleep(SEND_DELAY_S)
        await send_pending(self, fut)

    monkeypatch.setattr(faust_producer.ProducerBuffer, "_send_pending", slow_send_pending)
    omnihooks = create_app(settings_factory(), "sessions")
    app = omnihooks.app
    if transport == "aiokafka":  # Faust's own transport: the behaviour the engine corrects
        app.conf.broker = [f"aiokafka://{kafka.bootstrap}"]
    partitions = omnihooks.catalogue[Topic.OFFLINE_MESSAGES].partitions
    table = app.Table("commit-test", key_type=bytes, value_type=bytes, partitions=partitions)
    topic = applied_topics[Topic.OFFLINE_MESSAGES]
    finished = add_writer(omnihooks, table.__setitem__)
    produce_numbered(kafka.bootstrap, topic, RECORDS)

    create_changelogs_of(app, kafka.bootstrap)
    await app.start()
    try:
        await every_record_finished(finished)
        await app.consumer.commit()
        committed = committed_offset(kafka.bootstrap, app.conf.id, topic)
        written = end_offset(kafka.bootstrap, table.changelog_topic.get_topic_name())
        assert committed == RECORDS
        assert (written == RECORDS) is all_written, (
            f"committed {committed} records, {written} of their changelog writes acknowledged"
        )
    finally:
        await app.stop()


async def test_a_commit_waits_for_table_writes_batched_on_the_state_producer(
    kafka: Broker,
    settings_factory: Callable[..., Settings],
    applied_topics: dict[Topic, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The engine's table writes (`DirectTable`) go through a producer that lingers to batch
    them; here it lingers 3 s, so a commit that did not wait for them would pass five
    records whose changelog writes are still in librdkafka's queue."""
    monkeypatch.setattr("streams.engine.transport.STATE_LINGER_MS", 3000)
    omnihooks = create_app(settings_factory(producer="librdkafka"), "sessions")
    app = omnihooks.app
    partitions = omnihooks.catalogue[Topic.OFFLINE_MESSAGES].partitions
    faust_table = engine.bytes_table(app, "commit-test-state", partitions, "test")
    table = engine.DirectTable(app, faust_table)
    topic = applied_topics[Topic.OFFLINE_MESSAGES]
    finished = add_writer(omnihooks, table.__setitem__)
    produce_numbered(kafka.bootstrap, topic, RECORDS)

    create_changelogs_of(app, kafka.bootstrap)
    await app.start()
    try:
        await every_record_finished(finished)
        assert isinstance(app.producer, RdKafkaProducer)
        changelog = faust_table.changelog_topic.get_topic_name()
        assert end_offset(kafka.bootstrap, changelog) == 0, "the writes were not held back"
        await app.consumer.commit()
        committed = committed_offset(kafka.bootstrap, app.conf.id, topic)
        written = end_offset(kafka.bootstrap, changelog)
        assert committed == RECORDS
        assert written == RECORDS, (
            f"committed {committed} records, {written} writes on the changelog"
        )
    finally:
        await app.stop()


def changelog_records(bootstrap: str, topic: str, count: int) -> list[tuple[bytes, bytes | None]]:
    """The first `count` records of partition 0 of `topic`, as (key, value)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "omnihooks-test-reader",
                         "enable.auto.commit": False})  # fmt: skip
    consumer.assign([TopicPartition(topic, 0, 0)])
    records: list[tuple[bytes, bytes | None]] = []
    try:
        for _ in range(50):
            batch = consumer.consume(count, 0.2)
            records += [(m.key(), m.value()) for m in batch if m.error() is None]
            if len(records) >= count:
                break
        return records
    finally:
        consumer.close()


async def test_a_deferred_table_sends_each_key_once_per_commit_and_the_commit_waits(
    kafka: Broker,
    settings_factory: Callable[..., Settings],
    applied_topics: dict[Topic, str],
) -> None:
    """The session tables are deferred: five records rewriting one room are one changelog
    record, its last value, sent when the commit's flush starts; a key deleted in between
    is a tombstone. Nothing is on the changelog before that commit, all of it after."""
    omnihooks = create_app(settings_factory(producer="librdkafka"), "sessions")
    app = omnihooks.app
    partitions = omnihooks.catalogue[Topic.OFFLINE_MESSAGES].partitions
    faust_table = engine.bytes_table(app, "commit-test-deferred", partitions, "test")
    table = engine.DirectTable(app, faust_table, deferred=True)

    def write(key: bytes, value: bytes) -> None:
        table[b"room"] = value  # every record rewrites the one room
        table[key] = value
        del table[key]  # and writes a key it then deletes: only the delete is kept

    topic = applied_topics[Topic.OFFLINE_MESSAGES]
    finished = add_writer(omnihooks, write)
    produce_numbered(kafka.bootstrap, topic, RECORDS)

    create_changelogs_of(app, kafka.bootstrap)
    await app.start()
    try:
        await every_record_finished(finished)
        changelog = faust_table.changelog_topic.get_topic_name()
        assert end_offset(kafka.bootstrap, changelog) == 0, "the writes were sent before a flush"
        await app.consumer.commit()
        assert committed_offset(kafka.bootstrap, app.conf.id, topic) == RECORDS
        assert end_offset(kafka.bootstrap, changelog) == 1 + RECORDS
        records = changelog_records(kafka.bootstrap, changelog, 1 + RECORDS)
        assert records[0] == (b"room", b'{"n": %d}' % (RECORDS - 1))
        assert sorted(records[1:]) == sorted((b"k%d" % n, None) for n in range(RECORDS))
        assert table.get(b"k0") is None
    finally:
        await app.stop()

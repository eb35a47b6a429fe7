"""The race behind the scaling test's lost message, driven deterministically in one process.

Faust's stream skips an event whose generation is stale (fetched before a rebalance, queued
after it: the conductor parks a record on flow control, then queues it once the new
generation runs) and acknowledges it, `noack()` or not. When the partition came back to the
same worker, that acknowledgement lands among the new generation's, and the commit passes a
record no agent ever saw. Here an agent holds its first record while four more wait in its
queue; the generation moves on as a rebalance moves it; the agent finishes; the stream skips
the four. Stock Faust commits all five. omnihooks' consumer (`streams.engine`) commits only
the record the agent finished.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from faust import streams as faust_streams

from streams import engine
from streams.app import create_app
from streams.settings import Settings
from tests.conftest import Broker
from tests.support.harness import create_changelogs_of
from topics.catalogue import Topic

# Times a rebalance against an agent holding a record: one at a time.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("heavy")]

RECORDS = 5


async def wait_until(
    check: Callable[[], bool],
    what: str,
    state: Callable[[], str] = lambda: "",
    timeout_s: float = 20.0,
) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {state()}"
        await asyncio.sleep(0.05)


def committed_offset(bootstrap: str, group: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        [tp] = consumer.committed([TopicPartition(topic, 0)], timeout=10)
        return int(tp.offset)
    finally:
        consumer.close()


@pytest.mark.parametrize(
    ("transport", "iterator", "expected_commit"),
    [
        ("omnihooks", "python", 1),
        ("omnihooks", "cython", 1),
        ("aiokafka", "python", RECORDS),  # the bug, in stock Faust
        ("aiokafka", "cython", 1),
    ],
)
async def test_events_skipped_after_a_rebalance_are_not_committed(
    kafka: Broker,
    settings_factory: Callable[..., Settings],
    applied_topics: dict[Topic, str],
    monkeypatch: pytest.MonkeyPatch,
    transport: str,
    iterator: str,
    expected_commit: int,
) -> None:
    if iterator == "python":
        monkeypatch.setattr(faust_streams, "_CStreamIterator", None)
    else:
        assert faust_streams._CStreamIterator is not None, "faust's Cython extension is missing"
    settings = settings_factory()
    omnihooks = create_app(settings, "sessions")
    app = omnihooks.app
    if transport == "aiokafka":  # Faust's own consumer: the behaviour the engine corrects
        app.conf.broker = [f"aiokafka://{kafka.bootstrap}"]
    topic = applied_topics[Topic.OFFLINE_MESSAGES]
    seen: list[int] = []
    holding = asyncio.Event()
    release = asyncio.Event()
    finished = asyncio.Event()

    async def agent(stream: Any) -> None:
        async for event in stream.noack().events():
            seen.append(event.message.offset)
            if len(seen) == 1:
                holding.set()
                await release.wait()
            engine.finish(event)
            finished.set()

    app.agent(omnihooks.topics[Topic.OFFLINE_MESSAGES], name="holder")(agent)
    produce_numbered(kafka.bootstrap, topic, RECORDS)

    create_changelogs_of(app, kafka.bootstrap)
    await app.start()
    try:
        await asyncio.wait_for(holding.wait(), 90)
        consumer: Any = app.consumer
        tp = next(tp for tp in consumer.assignment() if (tp.topic, tp.partition) == (topic, 0))
        # All five are in the agent's queue once the consumer read past the last one.
        await wait_until(lambda: consumer._read_offset.get(tp) == RECORDS - 1, "records queued")
        # What a rebalance that gives this partition back to this worker does
        # (faust.transport.drivers.aiokafka.ConsumerRebalanceListener.on_partitions_assigned).
        app.consumer_generation_id += 1
        release.set()
        # The stream takes the four from its queue and skips them: the agent never sees them.
        queue = next(iter(app.agents["holder"]._actors)).stream.channel.queue
        await wait_until(queue.empty, "the stream to skip the rest")
        await asyncio.wait_for(finished.wait(), 30)  # the one record it saw is finished
        await consumer.commit()
        assert seen == [0]  # the agent saw one record only
        assert committed_offset(kafka.bootstrap, app.conf.id, topic) == expected_commit
    finally:
        release.set()
        await app.stop()


def produce_numbered(bootstrap: str, topic: str, count: int) -> None:
    """`count` records `{"n": 0}`, `{"n": 1}`, … on partition 0 of `topic`, acknowledged."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    for n in range(count):
        producer.produce(topic, key=b"k", value=b'{"n": %d}' % n, partition=0)
    assert producer.flush(30) == 0

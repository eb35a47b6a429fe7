"""The broker is real: both client stacks (librdkafka and aiokafka under Faust) talk to it."""

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from streams.ops.topic_admin import apply_catalogue
from streams.settings import Settings
from tests.conftest import Broker
from tests.support.harness import WorkerProcess, omnihooks_cli
from topics.catalogue import Topic, load_catalogue

pytestmark = pytest.mark.integration


def _create_topic(bootstrap: str, partitions: int = 2) -> str:
    name = f"t{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(timeout=30)
    return name


def test_confluent_kafka_produces_and_consumes(kafka: Broker) -> None:
    topic = _create_topic(kafka.bootstrap)
    producer = Producer(
        {"bootstrap.servers": kafka.bootstrap, "acks": "all", "enable.idempotence": True}
    )
    for i in range(5):
        producer.produce(topic, key=b"room-1", value=b'{"n": %d}' % i)
    assert producer.flush(30) == 0
    consumer = Consumer(
        {"bootstrap.servers": kafka.bootstrap, "group.id": topic, "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    got = []
    try:
        while len(got) < 5:
            message = consumer.poll(30)
            assert message is not None, f"only {len(got)} of 5 records came back"
            assert message.error() is None, message.error()
            got.append(message.value())
    finally:
        consumer.close()
    # One key, one partition: order is kept.
    assert got == [b'{"n": %d}' % i for i in range(5)]


async def test_aiokafka_produces_and_consumes_in_a_group(kafka: Broker) -> None:
    topic = _create_topic(kafka.bootstrap)
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka.bootstrap, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        for i in range(5):
            await producer.send_and_wait(topic, b"v%d" % i, key=b"room-1")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka.bootstrap, group_id=topic, auto_offset_reset="earliest",
        enable_auto_commit=False,
    )  # fmt: skip
    await consumer.start()
    got = []
    try:
        async for message in consumer:
            got.append(message.value)
            if len(got) == 5:
                break
        await consumer.commit()
        committed = await consumer.committed(next(iter(consumer.assignment())))
    finally:
        await consumer.stop()
    assert got == [b"v%d" % i for i in range(5)]
    assert committed is not None


def test_topics_apply_creates_once_then_has_nothing_to_do(kafka: Broker, topic_prefix: str) -> None:
    catalogue = load_catalogue(partitions=2)
    first = apply_catalogue(kafka.bootstrap, catalogue, topic_prefix)
    assert sorted(first.created) == sorted(catalogue.names(topic_prefix).values())
    second = apply_catalogue(kafka.bootstrap, catalogue, topic_prefix)
    assert second.created == [] and second.drift == []
    assert second.nothing_to_do
    metadata = AdminClient({"bootstrap.servers": kafka.bootstrap}).list_topics(timeout=10)
    assert len(metadata.topics[f"{topic_prefix}rooms"].partitions) == 2


def test_topics_apply_reports_drift_without_deleting(kafka: Broker, topic_prefix: str) -> None:
    apply_catalogue(kafka.bootstrap, load_catalogue(partitions=2), topic_prefix)
    report = apply_catalogue(kafka.bootstrap, load_catalogue(partitions=3), topic_prefix)
    assert report.created == []
    jobs = f"{topic_prefix}{Topic.WEBHOOK_JOBS.value}"
    assert f"{jobs}: 2 partitions, wanted 3" in report.drift
    metadata = AdminClient({"bootstrap.servers": kafka.bootstrap}).list_topics(timeout=10)
    assert len(metadata.topics[jobs].partitions) == 2


def test_a_worker_whose_changelogs_are_missing_stops_and_names_them(
    settings_factory: Callable[..., Settings],
    applied_topics: dict[Topic, str],
    tmp_path: Path,
) -> None:
    """Workers create no topics: a missing one is named, with the command that makes it."""
    settings = settings_factory()
    worker = WorkerProcess(settings, "delivery", tmp_path / "worker.log", make_changelogs=False)
    worker.start()
    assert worker.process is not None and worker.process.wait(60) == 1
    log = worker.log()
    assert f"{settings.app_id}-delivery-settled-jobs-changelog" in log
    assert "an admin creates them with `omnihooks topics apply --role delivery`" in log
    applied = omnihooks_cli(settings, "topics", "apply", "--role", "delivery")
    assert applied.returncode == 0 and "settled-jobs-changelog" in applied.stdout
    started = WorkerProcess(settings, "delivery", tmp_path / "again.log", make_changelogs=False)
    try:
        started.start().wait_for_log("Worker ready", timeout_s=90)
    finally:
        started.stop()

"""`omnihooks dlq` against the real broker: list, show, replay to a healthy receiver, purge."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka.admin import ConfigResource
from msgspec.structs import replace

from streams.engine.kafka import KafkaConfig, Writer, admin
from streams.settings import Settings
from tests.conftest import Broker
from tests.integration.test_delivery import make_job, send_jobs
from tests.support.harness import TopicReader, WorkerProcess, end_offsets, omnihooks_cli
from tests.support.receiver import Receiver
from topics import codec
from topics.catalogue import Topic
from topics.records import Attempt, DeadLetter, WebhookJob

pytestmark = pytest.mark.integration


def dlq(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return omnihooks_cli(settings, "dlq", *args)


def test_dead_letters_are_listed_replayed_once_and_purged(
    kafka: Broker,
    settings_factory: Callable[..., Settings],
    applied_topics: dict[Topic, str],
    start_worker: Callable[..., WorkerProcess],
    receiver: Receiver,
    read_topic: Callable[[str], TopicReader],
) -> None:
    settings = settings_factory(retry_attempts=1, retry_delay_s=0.1)
    start_worker(settings, "delivery")
    failing = [make_job(receiver.url("/status/503"), n, room=f"room-{n}") for n in range(3)]
    send_jobs(kafka, applied_topics[Topic.WEBHOOK_JOBS], failing)
    read_topic(applied_topics[Topic.WEBHOOK_DEAD_LETTERS]).wait_for(3, timeout_s=90)

    listed = dlq(settings, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = [codec.loads(line) for line in listed.stdout.splitlines()]
    assert {row["id"] for row in rows} == {job.delivery_id for job in failing}
    for row in rows:
        assert row["attempts"] == 2 and row["last"] == "503" and row["type"] == "Message"
        assert row["url"] == receiver.url("/status/503") and row["room"].startswith("room-")
    table = dlq(settings, "list", "--room", "room-1")
    assert table.returncode == 0 and "room-1" in table.stdout and "room-2" not in table.stdout
    assert "DEAD-LETTERED AT" in table.stdout

    shown = dlq(settings, "show", failing[0].delivery_id)
    assert shown.returncode == 0
    assert '"status": 503' in shown.stdout and '"body"' in shown.stdout

    # Without a terminal and without --yes nothing is replayed.
    refused = dlq(settings, "replay", "--status", "503", "--url", receiver.url("/ok"))
    assert refused.returncode == 1 and "--yes" in refused.stderr
    dry = dlq(settings, "replay", "--dry-run", "--url", receiver.url("/ok"))
    assert dry.returncode == 0 and dry.stdout.count("would replay") == 3

    replayed = dlq(settings, "replay", "--status", "5xx", "--url", receiver.url("/ok"), "--yes")
    assert replayed.returncode == 0, replayed.stderr
    got = receiver.wait_for("/ok", 3, timeout_s=90)
    assert sorted(r.headers["webhook-id"] for r in got) == sorted(j.delivery_id for j in failing)
    assert {r.body for r in got} == {codec.dumps(j.body) for j in failing}

    jobs_end = end_offsets(kafka.bootstrap, applied_topics[Topic.WEBHOOK_JOBS])
    again = dlq(settings, "replay", "--url", receiver.url("/ok"), "--yes")
    assert again.returncode == 0 and "3 already replayed" in again.stderr
    # The second replay wrote no job, so nothing more can reach the receiver.
    assert end_offsets(kafka.bootstrap, applied_topics[Topic.WEBHOOK_JOBS]) == jobs_end
    assert len(receiver.at("/ok")) == 3

    purged = dlq(settings, "purge", "--room", "room-0", "--yes")
    assert purged.returncode == 0 and "purged 1" in purged.stdout
    remaining = [codec.loads(line) for line in dlq(settings, "list", "--json").stdout.splitlines()]
    assert {row["room"] for row in remaining} == {"room-1", "room-2"}


def test_no_match_exits_0_and_a_bad_filter_exits_2(
    settings_factory: Callable[..., Settings], applied_topics: dict[Topic, str]
) -> None:
    settings = settings_factory()
    empty = dlq(settings, "list", "--type", "LivechatSession")
    assert empty.returncode == 0 and "no dead letters match" in empty.stderr
    bad = dlq(settings, "list", "--since", "last tuesday")
    assert bad.returncode == 2 and "--since 'last tuesday'" in bad.stderr
    assert dlq(settings, "list", "--bogus").returncode == 2
    assert dlq(settings, "show", "no-such-id").returncode == 1


def test_reading_dead_letters_leaves_no_consumer_group_offsets(
    kafka: Broker, settings_factory: Callable[..., Settings], applied_topics: dict[Topic, str]
) -> None:
    settings = settings_factory()
    send_dead_letters(kafka, applied_topics, [make_job("http://127.0.0.1:9/", 0)])
    listed = dlq(settings, "list", "--json")
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) == 1
    groups = kafka_admin(kafka).list_consumer_groups().result()
    names = [g.group_id for g in groups.valid]
    assert not [n for n in names if n.startswith(f"{settings.app_id}-reader")]


def send_dead_letters(kafka: Broker, topics: dict[Topic, str], jobs: list[WebhookJob]) -> None:
    letters = [
        DeadLetter(job, (Attempt("2023-02-02T10:00:01.000Z", 503, "HTTP 503", 5),),
                   "2023-02-02T10:00:02.000Z", "attempts exhausted")
        for job in jobs
    ]  # fmt: skip
    writer = Writer(KafkaConfig(kafka.bootstrap))
    for letter in letters:
        writer.write(topics[Topic.WEBHOOK_DEAD_LETTERS], letter.key(), letter.to_json())
    writer.flush()


def test_a_replay_the_broker_refuses_fails_the_command_and_names_the_topic(
    kafka: Broker, settings_factory: Callable[..., Settings], applied_topics: dict[Topic, str]
) -> None:
    settings = settings_factory()
    job = make_job("http://127.0.0.1:9/", 0)
    big = replace(job, body={**job.body, "padding": "x" * 20_000})
    send_dead_letters(kafka, applied_topics, [big])
    # The jobs topic now takes less than the job: the broker refuses the replay's write.
    jobs_topic = applied_topics[Topic.WEBHOOK_JOBS]
    resource = ConfigResource(ConfigResource.Type.TOPIC, jobs_topic,
                              set_config={"max.message.bytes": "10000"})  # fmt: skip
    client = kafka_admin(kafka)  # kept: a client collected mid-call cancels its futures
    for future in client.alter_configs([resource]).values():
        future.result()

    replayed = dlq(settings, "replay", "--yes")
    assert replayed.returncode == 1, replayed.stdout
    assert "KafkaWriteError" in replayed.stderr and jobs_topic in replayed.stderr
    assert "replayed 1" not in replayed.stdout


def kafka_admin(kafka: Broker) -> Any:
    return admin(KafkaConfig(kafka.bootstrap))

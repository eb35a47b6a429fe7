"""Delivery through the real broker to a real HTTP receiver: bodies, headers, retries, dead
letters, isolation from a hanging endpoint, a kill during a retry wait, crmData feedback."""

from __future__ import annotations

import base64
import itertools
import signal
import time
import uuid
from collections.abc import Callable

import httpx
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from streams.core.signing import signing_key, verify
from streams.dev import demo
from streams.engine.kafka import KafkaConfig, read_all
from streams.settings import Settings
from tests.conftest import Broker
from tests.integration.test_session_pipeline import produce as produce_events
from tests.support.harness import TopicReader, WorkerProcess, free_port, wait_committed
from tests.support.receiver import Receiver
from topics import codec
from topics.catalogue import Topic
from topics.records import WebhookJob

pytestmark = pytest.mark.integration

SIGNING_SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


def make_job(url: str, n: int = 0, room: str = "room-1") -> WebhookJob:
    body = {"_id": room, "label": "James", "type": "Message", "messages": [{"msg": f"m{n}"}]}
    return WebhookJob(str(uuid.uuid4()), "Message", room, url, body, "2023-02-02T10:00:00.000Z")


def send_jobs(kafka: Broker, topic: str, jobs: list[WebhookJob]) -> None:
    producer = Producer({"bootstrap.servers": kafka.bootstrap, "acks": "all"})
    for job in jobs:
        producer.produce(topic, key=job.key(), value=job.to_json())
    assert producer.flush(30) == 0


def test_each_job_arrives_once_with_exact_body_and_headers(
    kafka: Broker,
    settings_factory: Callable[..., Settings],
    applied_topics: dict[Topic, str],
    start_worker: Callable[..., WorkerProcess],
    receiver: Receiver,
) -> None:
    web_port = free_port()
    settings = settings_factory(
        secret_token="tok-123", signing_secret=SIGNING_SECRET, web_enabled=True, web_port=web_port
    )
    worker = start_worker(settings, "delivery")
    jobs = [make_job(receiver.url("/ok"), n, room=f"room-{n % 3}") for n in range(6)]
    send_jobs(kafka, applied_topics[Topic.WEBHOOK_JOBS], jobs)
    receiver.wait_for("/ok", 6, timeout_s=90)
    # Committed: the worker is done with every job, so anything more would be a duplicate.
    wait_committed(
        kafka.bootstrap, f"{settings.app_id}-delivery", [applied_topics[Topic.WEBHOOK_JOBS]]
    )
    got = receiver.at("/ok")
    assert len(got) == 6
    by_id = {request.headers["webhook-id"]: request for request in got}
    for job in jobs:
        request = by_id[job.delivery_id]
        assert request.body == codec.dumps(job.body)
        assert request.headers["X-RocketChat-Livechat-Token"] == "tok-123"
        assert request.headers["Content-Type"] == "application/json"
        timestamp = int(request.headers["webhook-timestamp"])
        assert abs(timestamp - time.time()) < 120
        assert verify(
            signing_key(SIGNING_SECRET), job.delivery_id, timestamp, request.body,
            request.headers["webhook-signature"],
        )  # fmt: skip
    metrics = httpx.get(f"http://127.0.0.1:{web_port}/metrics", timeout=10).text
    assert 'omnihooks_delivered_total{type="Message"} 6.0' in metrics
    assert "omnihooks_post_seconds_count 6.0" in metrics
    assert "omnihooks_in_flight 0.0" in metrics
    for page, status in (("/health", "ok"), ("/ready", "ready")):
        answer = httpx.get(f"http://127.0.0.1:{web_port}{page}", timeout=10)
        assert (answer.status_code, answer.json()) == (200, {"status": status})
    assert "tok-123" not in worker.log() and SIGNING_SECRET not in worker.log()


def test_no_token_header_without_a_secret(
    kafka: Broker,
    settings_factory: Callable[..., Settings],
    applied_topics: dict[Topic, str],
    start_worker: Callable[..., WorkerProcess],
    receiver: Receiver,
) -> None:
    start_worker(settings_factory(), "delivery")
    send_jobs(kafka, applied_topics[Topic.WEBHOOK_JOBS], [make_job(receiver.url("/ok"))])
    [request] = receiver.wait_for("/ok", 1, timeout_s=90)
    assert "X-RocketChat-Livechat-Token" not in request.headers
    assert "webhook-signature" not in request.headers
    assert "webhook-id" in request.headers
    assert "webhook-sequence" not in request.headers  # a job without a webhook number


def test_failing_receiver_gets_the_job_on_attempt_n_plus_1_at_the_set_interval(
    kafka: Broker,
    settings_factory: Callable[..., Settings],
    applied_topics: dict[Topic, str],
    start_worker: Callable[..., WorkerProcess],
    receiver: Receiver,
    read_topic: Callable[[str], TopicReader],
) -> None:
    delay = 1.5
    settings = settings_factory(retry_delay_s=delay)
    start_worker(settings, "delivery")
    job = make_job(receiver.url("/fail/3/a"))
    send_jobs(kafka, applied_topics[Topic.WEBHOOK_JOBS], [job])
    got = receiver.wait_for("/fail/3/a", 4, timeout_s=90)
    wait_committed(kafka.bootstrap, f"{settings.app_id}-delivery",
                   [applied_topics[Topic.WEBHOOK_JOBS], applied_topics[Topic.WEBHOOK_RETRIES]])  # fmt: skip
    assert len(receiver.at("/fail/3/a")) == 4  # delivered on the 4th: no more attempts
    assert {request.headers["webhook-id"] for request in got} == {job.delivery_id}
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(got)]
    assert all(delay * 0.95 <= gap < delay + 5 for gap in gaps), gaps
    retries = read_topic(applied_topics[Topic.WEBHOOK_RETRIES]).wait_for(3, timeout_s=10)
    assert [len(r["attempts"]) for r in retries] == [1, 2, 3]
    assert read_topic(applied_topics[Topic.WEBHOOK_DEAD_LETTERS]).settle(1) == []


def test_always_failing_receiver_yields_one_dead_letter_with_eleven_attempts(
    kafka: Broker,
    settings_factory: Callable[..., Settings],
    applied_topics: dict[Topic, str],
    start_worker: Callable[..., WorkerProcess],
    receiver: Receiver,
    read_topic: Callable[[str], TopicReader],
) -> None:
    settings = settings_factory(retry_delay_s=0.2)
    start_worker(settings, "delivery")
    job = make_job(receiver.url("/status/500"))
    send_jobs(kafka, applied_topics[Topic.WEBHOOK_JOBS], [job])
    dead = read_topic(applied_topics[Topic.WEBHOOK_DEAD_LETTERS])
    [letter] = dead.wait_for(1, timeout_s=90)
    assert len(receiver.at("/status/500")) == 11
    assert letter["job"]["delivery_id"] == job.delivery_id
    assert letter["job"]["body"] == job.body
    assert len(letter["attempts"]) == 11
    assert all(a["status"] == 500 and a["error"] is None for a in letter["attempts"])
    assert all(a["duration_ms"] >= 0 and a["at"].endswith("Z") for a in letter["attempts"])
    assert "11 attempts failed" in letter["reason"]
    wait_committed(kafka.bootstrap, f"{settings.app_id}-delivery",
                   [applied_topics[Topic.WEBHOOK_JOBS], applied_topics[Topic.WEBHOOK_RETRIES]])  # fmt: skip
    assert (
        len(read_all(KafkaConfig(kafka.bootstrap), applied_topics[Topic.WEBHOOK_DEAD_LETTERS])) == 1
    )


def test_a_hanging_endpoint_does_not_delay_healthy_jobs(
    kafka: Broker,
    settings_factory: Callable[..., Settings],
    applied_topics: dict[Topic, str],
    start_worker: Callable[..., WorkerProcess],
    receiver: Receiver,
) -> None:
    timeout_ms = 4000
    worker = start_worker(
        settings_factory(http_timeout_ms=timeout_ms, retry_delay_s=30), "delivery"
    )
    topic = applied_topics[Topic.WEBHOOK_JOBS]
    send_jobs(kafka, topic, [make_job(receiver.url("/ok"), room="warm-up")])
    receiver.wait_for("/ok", 1, timeout_s=90)
    # Same rooms, same partitions: hanging jobs first, healthy ones right behind them.
    hanging = [make_job(receiver.url("/hang"), n, room=f"room-{n}") for n in range(10)]
    healthy = [make_job(receiver.url("/ok"), n, room=f"room-{n}") for n in range(10)]
    sent = time.time()
    send_jobs(kafka, topic, hanging + healthy)
    got = receiver.wait_for("/ok", 11, timeout_s=30)
    slowest = max(request.at for request in got) - sent
    assert slowest < timeout_ms / 1000 / 2, f"healthy jobs waited {slowest:.2f}s behind /hang"
    worker.kill()  # a SIGTERM would wait a minute on the hanging requests' retries


def test_killing_the_worker_during_a_retry_wait_still_delivers(
    kafka: Broker,
    settings_factory: Callable[..., Settings],
    applied_topics: dict[Topic, str],
    start_worker: Callable[..., WorkerProcess],
    receiver: Receiver,
    read_topic: Callable[[str], TopicReader],
) -> None:
    settings = settings_factory(retry_delay_s=8)
    first = start_worker(settings, "delivery")
    job = make_job(receiver.url("/fail/1/kill"))
    send_jobs(kafka, applied_topics[Topic.WEBHOOK_JOBS], [job])
    receiver.wait_for("/fail/1/kill", 1, timeout_s=90)
    read_topic(applied_topics[Topic.WEBHOOK_RETRIES]).wait_for(1, timeout_s=10)
    first.stop(signal.SIGKILL)  # mid-wait: the retry exists only on the retries topic
    start_worker(settings, "delivery")
    got = receiver.wait_for("/fail/1/kill", 2, timeout_s=120)
    assert got[1].headers["webhook-id"] == job.delivery_id
    assert got[1].at - got[0].at >= 8 * 0.95


@pytest.mark.parametrize(
    ("compat", "answer", "crm_data"),
    [
        # current servers echo the raw text; 2023 servers the answer's `data` property
        ("rocketchat-7", b'{"contactId": "crm-42"}', '{"contactId": "crm-42"}'),
        ("rocketchat-2023", b'{"data": {"contactId": "crm-42"}}', {"contactId": "crm-42"}),
    ],
)
def test_crm_answer_becomes_crm_data_in_later_webhooks(
    kafka: Broker,
    settings_factory: Callable[..., Settings],
    applied_topics: dict[Topic, str],
    start_worker: Callable[..., WorkerProcess],
    receiver: Receiver,
    compat: str,
    answer: bytes,
    crm_data: object,
) -> None:
    receiver.crm_answer = answer
    settings = settings_factory(
        webhook_url=receiver.url("/crm"), send_on_visitor_message=True, send_on_close=True,
        send_on_agent_message=compat == "rocketchat-2023", compat=compat,
    )  # fmt: skip
    start_worker(settings, "all")
    records = demo.seed_conversation()
    produce_events(kafka, settings.topic_prefix, records[:3], gap_s=0.05)
    [first] = receiver.wait_for("/crm", 1, timeout_s=90)
    assert "crmData" not in first.json()
    time.sleep(3)  # the answer travels through the crm-data topic into the room's state
    produce_events(kafka, settings.topic_prefix, records[3:], gap_s=0.05)
    deadline = time.monotonic() + 90
    while not any(r.json()["type"] == "LivechatSession" for r in receiver.at("/crm")):
        assert time.monotonic() < deadline, "no LivechatSession"
        time.sleep(0.2)
    close = next(r.json() for r in receiver.at("/crm") if r.json()["type"] == "LivechatSession")
    assert close["crmData"] == crm_data
    assert list(close)[-1] == "closer" and len(close["messages"]) == 4


def already_settled(web_port: int) -> float:
    try:
        text = httpx.get(f"http://127.0.0.1:{web_port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return 0.0
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("omnihooks_already_settled_total{")
    )


def uncommitted(kafka: Broker, group: str, topic: str) -> int:
    """Records past the group's committed offsets, summed over the topic's partitions."""
    consumer = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": group})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        committed = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        total = 0
        for tp in committed:
            _low, high = consumer.get_watermark_offsets(tp, timeout=10)
            total += high - max(tp.offset, 0)
        return total
    finally:
        consumer.close()


def test_jobs_read_again_after_a_kill_are_not_posted_again(
    kafka: Broker,
    settings_factory: Callable[..., Settings],
    applied_topics: dict[Topic, str],
    start_worker: Callable[..., WorkerProcess],
    receiver: Receiver,
    read_topic: Callable[[str], TopicReader],
) -> None:
    # No commit before the kill: the new worker reads every job again from offset 0, as a
    # worker killed within a commit interval of its last POSTs reads those again.
    web_port = free_port()
    settings = settings_factory(commit_interval_ms=600_000, web_enabled=True, web_port=web_port)
    first = start_worker(settings, "delivery")
    jobs = [make_job(receiver.url("/ok"), n, room=f"room-{n}") for n in range(30)]
    send_jobs(kafka, applied_topics[Topic.WEBHOOK_JOBS], jobs)
    receiver.wait_for("/ok", len(jobs), timeout_s=90)
    changelog = f"{settings.app_id}-delivery-settled-jobs-changelog"
    read_topic(changelog).wait_for(len(jobs), timeout_s=30)  # every outcome is on the brokers
    first.stop(signal.SIGKILL)
    # A rebalance while the first worker started may have committed some: those are not read
    # again. The rest are, and each must be known as settled.
    read_again = uncommitted(
        kafka, f"{settings.app_id}-delivery", applied_topics[Topic.WEBHOOK_JOBS]
    )
    assert read_again >= len(jobs) // 2, f"only {read_again} jobs left uncommitted: nothing to test"
    start_worker(settings, "delivery")
    deadline = time.monotonic() + 120
    while already_settled(web_port) < read_again:
        assert time.monotonic() < deadline, (
            f"{already_settled(web_port)} of {read_again} jobs read again were known as settled; "
            f"{len(receiver.at('/ok'))} POSTs"
        )
        time.sleep(0.5)
    posts = [r.headers["webhook-id"] for r in receiver.at("/ok")]
    assert sorted(posts) == sorted(job.delivery_id for job in jobs)  # each once


def test_the_rocketchat_7_profile_retries_as_current_servers_do(
    kafka: Broker,
    settings_factory: Callable[..., Settings],
    applied_topics: dict[Topic, str],
    start_worker: Callable[..., WorkerProcess],
    receiver: Receiver,
    read_topic: Callable[[str], TopicReader],
) -> None:
    # lib/webhooks.ts: 5 POSTs in all, 4 x the HTTP timeout apart, only 5xx/429/network
    # errors retried. A 250 ms timeout makes the spacing 1 s.
    start_worker(settings_factory(compat="rocketchat-7", http_timeout_ms=250), "delivery")
    failing, refused = make_job(receiver.url("/status/503")), make_job(receiver.url("/status/404"))
    send_jobs(kafka, applied_topics[Topic.WEBHOOK_JOBS], [failing, refused])
    dead = read_topic(applied_topics[Topic.WEBHOOK_DEAD_LETTERS]).wait_for(2, timeout_s=90)
    by_id = {letter["job"]["delivery_id"]: letter for letter in dead}
    assert len(by_id[failing.delivery_id]["attempts"]) == 5
    assert len(by_id[refused.delivery_id]["attempts"]) == 1  # a 404 is not retried
    assert "not retried under the rocketchat-7 rule" in by_id[refused.delivery_id]["reason"]
    posts = receiver.at("/status/503")
    assert len(posts) == 5 and len(receiver.at("/status/404")) == 1
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(posts)]
    assert all(0.95 <= gap < 6 for gap in gaps), gaps

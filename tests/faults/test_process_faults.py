"""Worker and broker faults: a SIGKILL with POSTs in flight, a broker stopped for 30 s under
load. Every job ends delivered; duplicates only for jobs in flight, with the same id."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from streams.dev.local_kafka import LocalKafka
from streams.ops.topic_admin import apply_catalogue
from streams.settings import Settings, load_settings
from tests.conftest import TEST_PARTITIONS, Broker
from tests.integration.test_delivery import make_job, send_jobs
from tests.integration.test_scaling import ConversationStream
from tests.support.harness import WorkerProcess
from tests.support.receiver import Receiver
from topics.catalogue import Topic, load_catalogue

# Kills workers or starts brokers on a timeline: one at a time, not beside each other.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("heavy")]

FAULT_BROKER_PORT = 19292


def unique_ids(receiver: Receiver, path: str) -> set[str]:
    return {r.headers["webhook-id"] for r in receiver.at(path)}


def wait_until_quiet(receiver: Receiver, path: str, quiet_s: float = 1.0) -> None:
    """Until `path` has had no new request for `quiet_s` (at most 30 s)."""
    deadline = time.monotonic() + 30
    seen, since = len(receiver.at(path)), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < quiet_s:
        time.sleep(0.05)
        if len(receiver.at(path)) != seen:
            seen, since = len(receiver.at(path)), time.monotonic()


def test_sigkill_with_posts_in_flight_loses_nothing(
    kafka: Broker,
    settings_factory: Callable[..., Settings],
    applied_topics: dict[Topic, str],
    start_worker: Callable[..., WorkerProcess],
    receiver: Receiver,
    report: Callable[[str], None],
) -> None:
    settings = settings_factory(http_timeout_ms=10_000)
    first = start_worker(settings, "delivery")
    jobs = [make_job(receiver.url("/slow/3"), n, room=f"room-{n}") for n in range(40)]
    send_jobs(kafka, applied_topics[Topic.WEBHOOK_JOBS], jobs)
    receiver.wait_for("/slow/3", 20, timeout_s=90)
    first.stop(signal.SIGKILL)  # well inside the 3 s answers: no POST has completed
    killed_at = time.time()
    assert not any(r.at < killed_at - 3 for r in receiver.at("/slow/3"))
    # POSTs the killed worker had sent may still be on their way into the receiver: they
    # were in flight too (the suite once counted 5 of them as extra duplicates).
    wait_until_quiet(receiver, "/slow/3")
    in_flight = unique_ids(receiver, "/slow/3")
    restarted_at = time.time()
    start_worker(settings, "delivery")

    def resent() -> set[str]:
        return {r.headers["webhook-id"] for r in receiver.at("/slow/3") if r.at > restarted_at}

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(resent()) < len(jobs):
        time.sleep(0.5)
    # Nothing was acknowledged before its answer: every job is sent again after the restart.
    assert resent() == {job.delivery_id for job in jobs}
    ids = [r.headers["webhook-id"] for r in receiver.at("/slow/3")]
    duplicated = {i for i in ids if ids.count(i) > 1}
    assert duplicated == in_flight  # exactly the jobs in flight at the kill came twice
    report(
        f"worker SIGKILL: {len(jobs)} jobs, {len(in_flight)} in flight at the kill, "
        f"{len(set(ids))} delivered, {len(duplicated)} duplicated (same webhook-id), 0 lost"
    )


@pytest.fixture
def fault_broker() -> Iterator[LocalKafka]:
    """A broker of this test's own, so stopping it disturbs no other test."""
    broker = LocalKafka.configured(kafka_port=FAULT_BROKER_PORT)
    broker.up(timeout_s=120, fresh=True)
    yield broker
    broker.down()


def test_broker_down_for_30s_under_load_loses_nothing(
    fault_broker: LocalKafka,
    tmp_path: Path,
    start_worker: Callable[..., WorkerProcess],
    receiver: Receiver,
    report: Callable[[str], None],
    topic_prefix: str,
) -> None:
    settings = load_settings(
        kafka_bootstrap_servers=fault_broker.bootstrap, topic_prefix=topic_prefix,
        app_id=f"omnihooks-{topic_prefix.rstrip('.')}", partitions=TEST_PARTITIONS,
        data_dir=tmp_path / "worker", web_enabled=False, webhook_url=receiver.url("/ok"),
        send_on_close=True, send_on_visitor_message=True, compat="rocketchat-7",
    )  # fmt: skip
    apply_catalogue(fault_broker.bootstrap, load_catalogue(TEST_PARTITIONS), topic_prefix)
    worker = start_worker(settings, "all")
    worker.wait_for_log("Worker ready", timeout_s=90)
    stream = ConversationStream(Broker(fault_broker.bootstrap, "fault broker"), topic_prefix)
    stream.start()
    try:
        time.sleep(8)
        fault_broker.down()
        time.sleep(30)
        fault_broker.up(timeout_s=120)
        time.sleep(10)
    finally:
        stream.stop()
    assert stream.producer.flush(120) == 0  # the chat stack's producer lost nothing either
    rooms = sorted(stream.closed_at)
    expected = 3 * len(rooms)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and len(unique_ids(receiver, "/ok")) < expected:
        time.sleep(1)
    assert worker.process is not None and worker.process.poll() is None, worker.tail()
    got = receiver.at("/ok")
    assert len(unique_ids(receiver, "/ok")) == expected, worker.tail()
    report(
        f"broker down 30 s: {len(rooms)} conversations, {expected} webhooks delivered, "
        f"{len(got) - expected} duplicated, 0 lost; the worker reconnected by itself"
    )

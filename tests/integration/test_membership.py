"""Restarts and stops of workers with static membership (OMNIHOOKS_GROUP_INSTANCE_ID): a
crashed worker restarted under its name gets its rooms back without waiting for the group
to notice it died, and a worker stopped on purpose hands its rooms over at once."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import pytest

from streams.dev import demo
from streams.settings import Settings
from tests.conftest import Broker
from tests.support.harness import WorkerProcess
from tests.support.receiver import Receiver
from topics.catalogue import Topic

# Kills and stops workers on a timeline: one at a time, not beside other such tests.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("heavy")]

ROOMS = 8  # over the test's 4 partitions


def open_rooms(kafka: Broker, settings: Settings, run: str) -> list[str]:
    rooms = [f"{run}-{n}" for n in range(ROOMS)]
    records = [r for room in rooms for r in demo.seed_conversation(room, run=room)[:2]]
    demo.produce(kafka.bootstrap, settings.topic_prefix, records)
    return rooms


def say(kafka: Broker, settings: Settings, rooms: list[str], step: str) -> float:
    """A visitor message in every room; returns when they were produced."""
    records = [demo.message_event(room, f"{room}-{step}", "2024-05-01T10:00:00.000Z",
                                  f"message {step}", True, f"{room}-{step}") for room in rooms]  # fmt: skip
    produced = time.time()
    demo.produce(kafka.bootstrap, settings.topic_prefix, records)
    return produced


def arrivals(receiver: Receiver, step: str, count: int, timeout_s: float) -> list[float]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = [r.at for r in receiver.at("/ok") if f"message {step}" in r.body.decode()]
        if len(got) >= count:
            return got
        time.sleep(0.1)
    raise AssertionError(f"only {len(got)} of {count} messages of step {step} arrived")


def settings_for(
    settings_factory: Callable[..., Settings], receiver: Receiver, name: str
) -> Settings:
    return settings_factory(webhook_url=receiver.url("/ok"), send_on_visitor_message=True,
                            compat="rocketchat-7", group_instance_id=name)  # fmt: skip


def test_a_killed_worker_restarted_under_its_name_gets_its_rooms_back_at_once(
    kafka: Broker,
    settings_factory: Callable[..., Settings],
    applied_topics: dict[Topic, str],
    start_worker: Callable[..., WorkerProcess],
    receiver: Receiver,
    report: Callable[[str], None],
) -> None:
    settings = settings_for(settings_factory, receiver, "worker-0")
    assert settings.session_timeout_s >= 15  # what a new member would wait for
    worker = start_worker(settings)
    worker.wait_for_log("Worker ready", timeout_s=90)
    rooms = open_rooms(kafka, settings, "static")
    say(kafka, settings, rooms, "before")
    arrivals(receiver, "before", ROOMS, timeout_s=60)
    worker.stop(signal.SIGKILL)
    killed = time.time()
    start_worker(settings)  # the same name: no rebalance, no session timeout to wait out
    say(kafka, settings, rooms, "after")
    back = max(arrivals(receiver, "after", ROOMS, timeout_s=60)) - killed
    report(f"static membership: rooms flowing again {back:.1f} s after a SIGKILL and restart")
    assert back < 10


def test_a_static_worker_stopped_on_purpose_hands_its_rooms_over_at_once(
    kafka: Broker,
    settings_factory: Callable[..., Settings],
    applied_topics: dict[Topic, str],
    start_worker: Callable[..., WorkerProcess],
    receiver: Receiver,
    report: Callable[[str], None],
) -> None:
    first = start_worker(settings_for(settings_factory, receiver, "worker-0"))
    second = start_worker(settings_for(settings_factory, receiver, "worker-1"))
    for worker in (first, second):
        worker.wait_for_log("Worker ready", timeout_s=90)
    settings = settings_for(settings_factory, receiver, "worker-0")
    rooms = open_rooms(kafka, settings, "leaving")
    say(kafka, settings, rooms, "both")
    arrivals(receiver, "both", ROOMS, timeout_s=60)
    second.stop(signal.SIGTERM)  # a scale-down: it does not come back
    stopped = time.time()
    say(kafka, settings, rooms, "one")
    taken_over = max(arrivals(receiver, "one", ROOMS, timeout_s=60)) - stopped
    report(f"static membership: a stopped worker's rooms taken over in {taken_over:.1f} s")
    assert taken_over < settings.session_timeout_s  # it left; nobody waited for a timeout
    assert "left the group" in second.log()

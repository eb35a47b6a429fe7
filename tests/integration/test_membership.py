"""Restarts and stops of workers with static membership (OMNIHOOKS_GROUP_INSTANCE_ID): a
crashed worker restarted under its name gets its rooms back without waiting for the group
to notice it died, a worker stopped on purpose hands its rooms over at once, a rolling
restart delays no message by seconds, and a worker that never comes back is replaced by
the survivor's warm standby copies, not by a restore from the changelogs."""

from __future__ import annotations

import re
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Producer

from streams.agents.tables import changelog_topic, tables_of
from streams.dev import demo
from streams.settings import Settings
from tests.conftest import Broker
from tests.support.harness import WorkerProcess, end_offsets
from tests.support.receiver import Receiver
from topics.catalogue import Topic

# Kills and stops workers on a timeline: one at a time, not beside other such tests.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("heavy")]

ROOMS = 8  # over the test's 4 partitions


def open_rooms(kafka: Broker, settings: Settings, run: str, count: int = ROOMS) -> list[str]:
    rooms = [f"{run}-{n}" for n in range(count)]
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
    settings_factory: Callable[..., Settings], receiver: Receiver, name: str, **more: object
) -> Settings:
    return settings_factory(webhook_url=receiver.url("/ok"), send_on_visitor_message=True,
                            compat="rocketchat-7", group_instance_id=name, **more)  # fmt: skip


def two_workers_on_disk(
    settings_factory: Callable[..., Settings],
    receiver: Receiver,
    start_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> tuple[dict[str, Settings], list[WorkerProcess]]:
    """worker-0 and worker-1, each with its tables in RocksDB under a directory of its own
    (a StatefulSet pod's volume), started and ready."""
    names = ("worker-0", "worker-1")
    settings = {n: settings_for(settings_factory, receiver, n, store="rocksdb",
                                data_dir=tmp_path / n) for n in names}  # fmt: skip
    workers = [start_worker(settings[n]) for n in names]
    for worker in workers:
        worker.wait_for_log("Worker ready", timeout_s=90)
    return settings, workers


RESTORE_LINE = re.compile(r"table recovery: (\d+) active changelog partitions, (\d+) records")


def restores(log: str) -> list[tuple[int, int]]:
    """(active changelog partitions, records to read) of each recovery a worker logged."""
    return [(int(a), int(b)) for a, b in RESTORE_LINE.findall(log)]


def test_a_killed_worker_restarted_under_its_name_gets_its_rooms_back_at_once(
    kafka: Broker,
    settings_factory: Callable[..., Settings],
    applied_topics: dict[Topic, str],
    start_worker: Callable[..., WorkerProcess],
    receiver: Receiver,
    report: Callable[[str], None],
) -> None:
    settings = settings_for(settings_factory, receiver, "worker-0")
    assert settings.session_timeout_s >= 12  # what a new member would wait for: above 10
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


STEADY_TEXT = re.compile(r"steady \d+")


class SteadyTalk(threading.Thread):
    """A visitor message in one of the rooms every `pause_s`, round robin, until stopped;
    remembers when each was produced (by its text)."""

    def __init__(self, kafka: Broker, settings: Settings, rooms: list[str], pause_s: float) -> None:
        super().__init__(daemon=True, name="steady-talk")
        self.kafka, self.prefix, self.rooms, self.pause_s = (
            kafka,
            settings.topic_prefix,
            rooms,
            pause_s,
        )
        self.produced: dict[str, float] = {}
        self._halt = threading.Event()

    def run(self) -> None:
        producer = Producer({"bootstrap.servers": self.kafka.bootstrap, "acks": "all"})
        n = 0
        while not self._halt.is_set():
            room = self.rooms[n % len(self.rooms)]
            text = f"steady {n}"
            record = demo.message_event(room, f"{room}-steady-{n}", "2024-05-01T10:00:00.000Z",
                                        text, True, f"{room}-steady-{n}")  # fmt: skip
            self.produced[text] = time.time()
            producer.produce(f"{self.prefix}{record.topic.value}", key=record.key,
                             value=record.encoded())  # fmt: skip
            producer.flush(30)
            n += 1
            self._halt.wait(self.pause_s)

    def stop(self) -> None:
        self._halt.set()
        self.join(30)


def test_a_rolling_restart_of_one_of_two_workers_delays_no_message_by_seconds(
    kafka: Broker,
    settings_factory: Callable[..., Settings],
    applied_topics: dict[Topic, str],
    start_worker: Callable[..., WorkerProcess],
    receiver: Receiver,
    report: Callable[[str], None],
    tmp_path: Path,
) -> None:
    settings, workers = two_workers_on_disk(settings_factory, receiver, start_worker, tmp_path)
    rooms = open_rooms(kafka, settings["worker-0"], "rolling")
    talk = SteadyTalk(kafka, settings["worker-0"], rooms, pause_s=0.1)
    talk.start()
    try:
        time.sleep(3)  # the talk runs on both workers before the restart
        workers[1].stop(signal.SIGTERM)  # Kubernetes' rolling update: stop, start
        restarted = start_worker(settings["worker-1"])
        restarted.wait_for_log("Worker ready", timeout_s=90)
        time.sleep(3)  # and on both again after it
    finally:
        talk.stop()
    texts = set(talk.produced)
    deadline = time.monotonic() + 60
    received: dict[str, float] = {}
    while time.monotonic() < deadline and set(received) != texts:
        for request in receiver.at("/ok"):
            for text in STEADY_TEXT.findall(request.body.decode()):
                received.setdefault(text, request.at)
        time.sleep(0.2)
    missing = texts - set(received)
    assert not missing, (
        f"{len(missing)} of {len(texts)} messages never arrived: {sorted(missing)[:5]}"
    )
    delays = sorted(received[t] - talk.produced[t] for t in texts)
    report(f"rolling restart of one of two workers: {len(texts)} messages, 0 lost, "
           f"max delay {delays[-1]:.2f} s, median {delays[len(delays) // 2]:.2f} s")  # fmt: skip
    assert delays[-1] < 5, f"a message waited {delays[-1]:.1f} s through the restart"


def test_a_lost_workers_rooms_are_taken_over_by_a_warm_standby_without_a_restore(
    kafka: Broker,
    settings_factory: Callable[..., Settings],
    applied_topics: dict[Topic, str],
    start_worker: Callable[..., WorkerProcess],
    receiver: Receiver,
    report: Callable[[str], None],
    tmp_path: Path,
) -> None:
    settings, (survivor, lost) = two_workers_on_disk(
        settings_factory, receiver, start_worker, tmp_path
    )
    assert settings["worker-0"].table_standby_replicas == 1  # the default
    rooms = open_rooms(kafka, settings["worker-0"], "standby", count=40)
    say(kafka, settings["worker-0"], rooms, "before")
    arrivals(receiver, "before", len(rooms), timeout_s=60)
    one = settings["worker-0"]
    changelogs = [changelog_topic(one, "all", table) for table in tables_of("all", one)]
    written = sum(sum(end_offsets(kafka.bootstrap, topic).values()) for topic in changelogs)

    seen = len(survivor.log())
    lost.stop(signal.SIGKILL)  # a lost node: it never comes back
    killed = time.time()
    say(kafka, one, rooms, "after")
    taken_over = max(arrivals(receiver, "after", len(rooms), timeout_s=90)) - killed
    after_kill = restores(survivor.log()[seen:])
    assert after_kill, f"the survivor logged no recovery after the kill:\n{survivor.tail()}"
    partitions, to_read = after_kill[-1]
    report(f"lost worker: rooms taken over in {taken_over:.1f} s by a warm standby; it read "
           f"{to_read} of the {written} changelog records its tables hold")  # fmt: skip
    assert partitions > restores(survivor.log()[:seen])[-1][0]  # it took the lost rooms over
    # A cold takeover reads the lost worker's share of every changelog, about half of them.
    assert written >= len(rooms) and to_read < written / 10, (to_read, written)
    assert taken_over < one.session_timeout_s + 15

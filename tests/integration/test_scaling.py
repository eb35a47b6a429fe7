"""Many workers on one broker: scale 1 → 3 → 1 (one SIGTERM, one SIGKILL) under a steady stream
of conversations; every webhook arrives, every close carries its whole transcript."""

from __future__ import annotations

import itertools
import signal
import statistics
import threading
import time
from collections.abc import Callable

import pytest
from confluent_kafka import Producer

from streams.dev import demo
from streams.settings import Settings
from tests.conftest import Broker
from tests.support.harness import WorkerProcess
from tests.support.receiver import Receiver
from topics.catalogue import Topic

# Kills workers or starts brokers on a timeline: one at a time, not beside each other.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("heavy")]


class ConversationStream(threading.Thread):
    """Publishes the seed conversation for fresh rooms, one after another, until stopped."""

    def __init__(self, kafka: Broker, prefix: str, pause_s: float = 0.4) -> None:
        super().__init__(daemon=True, name="conversations")
        self.producer = Producer(
            {"bootstrap.servers": kafka.bootstrap, "acks": "all", "enable.idempotence": True}
        )
        self.prefix = prefix
        self.pause_s = pause_s
        self.closed_at: dict[str, float] = {}  # room -> when its close event was published
        self._halt = threading.Event()

    def run(self) -> None:
        n = 0
        while not self._halt.is_set():
            room = f"scale-{n:04d}"
            for record in demo.seed_conversation(room, run=room):
                self.producer.produce(
                    f"{self.prefix}{record.topic.value}", key=record.key, value=record.encoded()
                )
                self.producer.flush(30)
                time.sleep(0.02)
            self.closed_at[room] = time.time()
            n += 1
            self._halt.wait(self.pause_s)

    def stop(self) -> None:
        self._halt.set()
        self.join(30)


def test_scale_up_down_and_a_kill_lose_no_webhook(
    kafka: Broker,
    settings_factory: Callable[..., Settings],
    applied_topics: dict[Topic, str],
    start_worker: Callable[..., WorkerProcess],
    receiver: Receiver,
    report: Callable[[str], None],
) -> None:
    settings = settings_factory(
        webhook_url=receiver.url("/ok"),
        send_on_close=True,
        send_on_visitor_message=True,
        compat="rocketchat-7",  # a visitor Message needs no agent setting
    )
    first = start_worker(settings, "all")
    first.wait_for_log("Worker ready", timeout_s=90)
    stream = ConversationStream(kafka, settings.topic_prefix)
    phases: list[tuple[str, float]] = [("1 worker", time.time())]
    stream.start()
    try:
        time.sleep(12)
        phases.append(("scale up to 3", time.time()))
        second, third = start_worker(settings, "all"), start_worker(settings, "all")
        time.sleep(25)
        phases.append(("SIGTERM one", time.time()))
        second.stop(signal.SIGTERM)
        time.sleep(15)
        phases.append(("SIGKILL one", time.time()))
        third.stop(signal.SIGKILL)
        time.sleep(15)
    finally:
        stream.stop()
    phases.append(("end", time.time()))
    rooms = sorted(stream.closed_at)
    expected = 3 * len(rooms)  # two visitor Message webhooks and one close per room

    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        if len({r.headers["webhook-id"] for r in receiver.at("/ok")}) >= expected:
            break
        time.sleep(0.5)
    got = receiver.at("/ok")
    unique = {r.headers["webhook-id"]: r for r in got}
    by_room: dict[str, list[str]] = {}
    for request in unique.values():
        body = request.json()
        by_room.setdefault(body["_id"], []).append(body["type"])
    missing = {room: by_room.get(room, []) for room in rooms if sorted(by_room.get(room, [])) != ["LivechatSession", "Message", "Message"]}  # fmt: skip
    assert not missing, (
        f"{len(missing)} of {len(rooms)} rooms lack webhooks: {list(missing.items())[:5]}"
    )
    assert len(unique) == expected
    closes = [r.json() for r in unique.values() if r.json()["type"] == "LivechatSession"]
    incomplete = [c["_id"] for c in closes if len(c["messages"]) != 4]
    assert not incomplete, f"closes without their whole transcript: {incomplete}"
    # Duplicates are the POSTs in flight at the SIGKILL, at most the worker's concurrency (a
    # SIGTERM repeats none), with the same delivery id and the same body.
    duplicates = len(got) - len(unique)
    assert duplicates <= settings.delivery_concurrency, f"{duplicates} duplicates for one kill"
    differing = [r.headers["webhook-id"] for r in got
                 if r.body != unique[r.headers["webhook-id"]].body]  # fmt: skip
    assert not differing, f"duplicates whose body differs: {differing[:5]}"

    close_received = {
        r.json()["_id"]: r.at for r in unique.values() if r.json()["type"] == "LivechatSession"
    }
    lines = [
        f"scaling: {len(rooms)} conversations, {expected} webhooks, 0 lost, {duplicates} duplicates"
    ]
    for (name, start), (_, end) in itertools.pairwise(phases):
        latencies = [
            close_received[room] - stream.closed_at[room]
            for room in rooms
            if start <= stream.closed_at[room] < end
        ]
        if latencies:
            lines.append(
                f"  {name:14} closes {len(latencies):3}: close→receipt median "
                f"{statistics.median(latencies):.2f}s, max {max(latencies):.2f}s"
            )
    for line in lines:
        report(line)

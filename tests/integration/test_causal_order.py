"""A room's records apply in the order the chat stack produced them, across `rooms` and
`messages`, whenever the worker reads a backlog: a cold start, a restart after SIGKILL, a
second worker joining (a rebalance).

Each room is `started` → `taken` → agent message → visitor message with an email → `closed`.
Applied out of order, the agent `Message` webhook lacks `agent` (the message came before
`taken`), or the lead is never captured, or the close misses messages. The bodies a real HTTP
receiver got are checked room by room.
"""

from __future__ import annotations

import signal
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Producer

from streams.dev import demo
from streams.settings import Settings
from tests.conftest import Broker
from tests.support.harness import WorkerProcess
from tests.support.receiver import Receiver
from topics import codec
from topics.catalogue import Topic

# Kills workers or starts brokers on a timeline: one at a time, not beside each other.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("heavy")]

AGENT_ID = demo.AGENT["_id"]
WEBHOOKS_PER_ROOM = 4  # agent Message, visitor Message, LeadCapture, LivechatSession


def visitor(n: int) -> dict[str, Any]:
    return {"_id": f"v-{n}", "token": f"tok-{n}", "name": f"Visitor {n}", "username": f"guest-{n}"}


def conversation(run: str, n: int) -> list[tuple[Topic, str, dict[str, Any]]]:
    """The five records of room `n`, in the order the chat stack produces them."""
    room_id = f"{run}-{n:04d}"
    guest = visitor(n)
    room = {"_id": room_id, "fname": guest["name"], "ts": "2024-05-01T10:00:00.000Z",
            "v": {"_id": guest["_id"], "token": guest["token"], "username": guest["username"]}}  # fmt: skip
    served = {**room, "servedBy": {"_id": AGENT_ID, "username": demo.AGENT["username"]}}

    def room_event(event: str, body: dict[str, Any], agent: Any, step: int) -> tuple[Topic, str, dict[str, Any]]:  # fmt: skip
        value = {"id": f"{room_id}-{step}", "event": event, "ts": "2024-05-01T10:00:00.000Z",
                 "room": body, "visitor": guest, "agent": agent}  # fmt: skip
        return Topic.ROOMS, room_id, value

    def message(text: str, by_visitor: bool, step: int) -> tuple[Topic, str, dict[str, Any]]:
        author = guest if by_visitor else demo.AGENT
        body = {"_id": f"{room_id}-m{step}", "rid": room_id, "msg": text, "ts": "2024-05-01T10:00:01.000Z",
                "u": {"_id": author["_id"], "username": author["username"], "name": author["name"]}}  # fmt: skip
        if by_visitor:
            body["token"] = guest["token"]
        return Topic.MESSAGES, room_id, {"id": f"{room_id}-{step}", "event": "message",
                                         "ts": body["ts"], "message": body}  # fmt: skip

    closed = {**served, "msgs": 2, "closedAt": "2024-05-01T10:05:00.000Z",
              "closedBy": {"_id": AGENT_ID, "username": "user1"}, "closer": "user"}  # fmt: skip
    return [
        room_event("started", room, None, 1),
        room_event("taken", served, demo.AGENT, 2),
        message("Hello, how can I help?", False, 3),
        message(f"Write to me at lead-{n}@example.com", True, 4),
        room_event("closed", closed, demo.AGENT, 5),
    ]


class Publisher:
    """One idempotent producer writing conversations in order (as one chat server would)."""

    def __init__(self, kafka: Broker, prefix: str) -> None:
        self.prefix = prefix
        self.producer = Producer(
            {
                "bootstrap.servers": kafka.bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 5,
            }
        )

    def publish(
        self, run: str, rooms: range, pause_s: float = 0.0, one_topic: bool = False
    ) -> list[str]:
        for n in rooms:
            for topic, key, value in conversation(run, n):
                name = Topic.ROOMS.value if one_topic else topic.value
                self.producer.produce(
                    f"{self.prefix}{name}", key=key.encode(), value=codec.dumps(value)
                )
            self.producer.poll(0)
            if pause_s:
                time.sleep(pause_s)
        assert self.producer.flush(60) == 0, "records not acknowledged by Kafka"
        return [f"{run}-{n:04d}" for n in rooms]


def order_settings(settings_factory: Callable[..., Settings], receiver: Receiver) -> Settings:
    return settings_factory(
        webhook_url=receiver.url("/ok"),
        send_on_close=True,
        send_on_agent_message=True,
        send_on_visitor_message=True,
        send_on_lead_capture=True,
        session_timeout_s=6.0,
    )


def wait_for_webhooks(receiver: Receiver, rooms: list[str], timeout_s: float) -> dict[str, list[dict[str, Any]]]:  # fmt: skip
    """The unique bodies (by webhook-id) per room, once every room has all of its webhooks."""
    wanted = WEBHOOKS_PER_ROOM * len(rooms)
    deadline = time.monotonic() + timeout_s
    while True:
        unique = {r.headers["webhook-id"]: r.json() for r in receiver.at("/ok")}
        if len(unique) >= wanted or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    by_room: dict[str, list[dict[str, Any]]] = {room: [] for room in rooms}
    for body in unique.values():
        by_room.setdefault(body["_id"], []).append(body)
    return by_room


def assert_applied_in_order(by_room: dict[str, list[dict[str, Any]]]) -> None:
    problems: dict[str, str] = {}
    for room, bodies in by_room.items():
        types = sorted(body["type"] for body in bodies)
        if types != ["LeadCapture", "LivechatSession", "Message", "Message"]:
            problems[room] = f"webhooks {types}"
            continue
        n = int(room.rsplit("-", 1)[1])
        agent_message = next(b for b in bodies if b["type"] == "Message" and "token" not in b["messages"][0])  # fmt: skip
        close = next(b for b in bodies if b["type"] == "LivechatSession")
        lead = next(b for b in bodies if b["type"] == "LeadCapture")
        if (agent_message.get("agent") or {}).get("_id") != AGENT_ID:
            problems[room] = f"agent Message without the agent that took the room: {agent_message.get('agent')}"  # fmt: skip
        elif lead["visitor"].get("email") != [{"address": f"lead-{n}@example.com"}]:
            problems[room] = f"lead not captured: {lead['visitor']}"
        elif len(close["messages"]) != 2:
            problems[room] = f"close with {len(close['messages'])} of 2 messages"
    assert not problems, f"{len(problems)} of {len(by_room)} rooms out of order: {list(problems.items())[:5]}"  # fmt: skip


@pytest.mark.parametrize(
    ("layout", "rooms", "one_topic"),
    [("rooms and messages", 200, False), ("one topic", 100, True)],
)
def test_a_backlog_read_at_start_applies_each_room_in_producer_order(
    kafka: Broker,
    settings_factory: Callable[..., Settings],
    applied_topics: dict[Topic, str],
    start_worker: Callable[..., WorkerProcess],
    receiver: Receiver,
    layout: str,
    rooms: int,
    one_topic: bool,
) -> None:
    # "one topic": message events on the rooms topic too, the README's recommended layout.
    settings = order_settings(settings_factory, receiver)
    publisher = Publisher(kafka, settings.topic_prefix)
    published = publisher.publish("backlog", range(rooms), one_topic=one_topic)
    start_worker(settings).wait_for_log("Worker ready", timeout_s=90)
    assert_applied_in_order(wait_for_webhooks(receiver, published, timeout_s=120))


def _publish_in_background(kafka: Broker, prefix: str, run: str, rooms: range) -> tuple[threading.Thread, list[str]]:  # fmt: skip
    published: list[str] = []

    def publish() -> None:
        published.extend(Publisher(kafka, prefix).publish(run, rooms, pause_s=0.05))

    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    return thread, published


def test_a_worker_killed_mid_stream_resumes_each_room_in_producer_order(
    kafka: Broker,
    settings_factory: Callable[..., Settings],
    applied_topics: dict[Topic, str],
    start_worker: Callable[..., WorkerProcess],
    receiver: Receiver,
) -> None:
    settings = order_settings(settings_factory, receiver)
    worker = start_worker(settings)
    worker.wait_for_log("Worker ready", timeout_s=90)
    thread, published = _publish_in_background(kafka, settings.topic_prefix, "killed", range(200))
    time.sleep(3)
    worker.stop(signal.SIGKILL)
    time.sleep(3)  # a backlog builds up while no worker runs
    start_worker(settings)
    thread.join(60)
    assert len(published) == 200
    assert_applied_in_order(wait_for_webhooks(receiver, published, timeout_s=150))


def test_a_second_worker_joining_mid_stream_keeps_each_room_in_producer_order(
    kafka: Broker,
    settings_factory: Callable[..., Settings],
    applied_topics: dict[Topic, str],
    start_worker: Callable[..., WorkerProcess],
    receiver: Receiver,
) -> None:
    settings = order_settings(settings_factory, receiver)
    first = start_worker(settings)
    first.wait_for_log("Worker ready", timeout_s=90)
    thread, published = _publish_in_background(kafka, settings.topic_prefix, "joined", range(200))
    time.sleep(2)
    start_worker(settings)  # the rebalance hands it partitions with records not yet read
    thread.join(60)
    assert len(published) == 200
    assert_applied_in_order(wait_for_webhooks(receiver, published, timeout_s=150))


def test_a_live_message_its_room_explains_arrives_without_the_order_grace(
    kafka: Broker,
    settings_factory: Callable[..., Settings],
    applied_topics: dict[Topic, str],
    start_worker: Callable[..., WorkerProcess],
    receiver: Receiver,
    report: Callable[[str], None],
) -> None:
    """A visitor's message in a room that started waits for nothing: the order grace (1 s)
    is for a record whose room cannot explain it yet (the tests above prove that order).
    The CRM answers each webhook with a body, as a CRM does: its answer (crm-data, read
    beside the messages) must not hold the room's next message back either."""
    settings = order_settings(settings_factory, receiver).model_copy(
        update={"webhook_url": receiver.url("/crm")}
    )
    assert settings.order_grace_ms == 1000
    start_worker(settings).wait_for_log("Worker ready", timeout_s=90)
    publisher = Publisher(kafka, settings.topic_prefix)
    room_id = "live-0000"
    started, taken, *_ = conversation("live", 0)
    for topic, key, value in (started, taken):
        publisher.producer.produce(f"{settings.topic_prefix}{topic.value}", key=key.encode(),
                                   value=codec.dumps(value))  # fmt: skip
    assert publisher.producer.flush(30) == 0
    latencies = []
    for n in range(10):
        time.sleep(0.3)  # live: each message alone, the rooms topic quiet
        message = {"_id": f"{room_id}-live{n}", "rid": room_id, "msg": f"live {n}",
                   "ts": "2024-05-01T10:00:02.000Z", "token": visitor(0)["token"],
                   "u": {"_id": "v-0", "username": "guest-0", "name": "Visitor 0"}}  # fmt: skip
        value = {
            "id": f"live-event-{n}",
            "event": "message",
            "ts": message["ts"],
            "message": message,
        }
        produced = time.time()
        publisher.producer.produce(f"{settings.topic_prefix}messages", key=room_id.encode(),
                                   value=codec.dumps(value))  # fmt: skip
        assert publisher.producer.flush(30) == 0
        arrived = receiver.wait_for("/crm", n + 1, timeout_s=30)[-1]
        assert arrived.json()["messages"][0]["msg"] == f"live {n}"
        latencies.append(arrived.at - produced)
    report(f"live visitor messages: produce to receiver median {statistics.median(latencies) * 1000:.0f} ms, "
           f"max {max(latencies) * 1000:.0f} ms (order grace 1000 ms)")  # fmt: skip
    assert statistics.median(latencies) < 0.5, latencies
    assert sum(latency < 0.9 for latency in latencies) >= 8, latencies

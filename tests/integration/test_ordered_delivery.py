"""Ordered delivery per room (`OMNIHOOKS_DELIVERY_ORDER=room`, the default) through the real
broker and a real receiver: a room's failing webhook holds back that room's later webhooks
on that endpoint only, across a SIGKILL too, and each room's webhooks arrive in order."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Callable

import pytest

from streams.settings import Settings
from tests.conftest import Broker
from tests.integration.test_delivery import send_jobs
from tests.support.harness import TopicReader, WorkerProcess, wait_until
from tests.support.receiver import Received, Receiver
from topics.catalogue import Topic
from topics.records import WebhookJob

pytestmark = pytest.mark.integration

ROOMS, WEBHOOKS = 8, 5
STUCK = ("room-3", 2)  # the room and webhook number crm "a" fails three times
RETRIES = {"retry_attempts": 4, "retry_delay_s": 1}


def room_job(url: str, room: str, n: int) -> WebhookJob:
    body = {"_id": room, "n": n}
    return WebhookJob(str(uuid.uuid4()), "Message", room, url, body, "2023-02-02T10:00:00.000Z",
                      sequence=n)  # fmt: skip


def room_jobs(url: str, room: str) -> list[WebhookJob]:
    return [room_job(url, room, n) for n in range(1, WEBHOOKS + 1)]


def numbers(received: list[Received], room: str, accepted_only: bool) -> list[int]:
    return [
        int(r.headers["webhook-sequence"])
        for r in received
        if r.json()["_id"] == room and (r.status == 200 or not accepted_only)
    ]


def wait_accepted(receiver: Receiver, path: str, rooms: list[str], timeout_s: float) -> None:
    def all_in() -> bool:
        got = receiver.at(path)
        return all(set(numbers(got, room, True)) == set(range(1, WEBHOOKS + 1)) for room in rooms)

    wait_until(all_in, timeout_s, lambda: f"not every room's webhooks reached {path}: "
               f"{len(receiver.at(path))} requests")  # fmt: skip


def in_order(accepted: list[int]) -> bool:
    """Each accepted webhook after every earlier one of its room (a repeat of one accepted
    before is allowed: a POST in flight at a SIGKILL is sent again)."""
    seen: set[int] = set()
    for number in accepted:
        if any(earlier not in seen for earlier in range(1, number)):
            return False
        seen.add(number)
    return True


def test_a_failing_webhook_holds_back_only_its_rooms_later_ones_on_that_endpoint(
    kafka: Broker,
    settings_factory: Callable[..., Settings],
    applied_topics: dict[Topic, str],
    start_worker: Callable[..., WorkerProcess],
    receiver: Receiver,
    read_topic: Callable[[str], TopicReader],
) -> None:
    settings = settings_factory(**RETRIES)
    assert settings.delivery_order == "room"
    first = start_worker(settings, "delivery")
    receiver.failing["a", *STUCK] = 3
    rooms = [f"room-{n}" for n in range(ROOMS)]
    crm_a, crm_b = receiver.url("/ordered/a"), receiver.url("/ordered/b")
    jobs = [job for room in rooms for job in room_jobs(crm_a, room) + room_jobs(crm_b, room)]
    send_jobs(kafka, applied_topics[Topic.WEBHOOK_JOBS], jobs)

    others = [room for room in rooms if room != STUCK[0]]
    wait_accepted(receiver, "/ordered/a", others, timeout_s=60)
    wait_accepted(receiver, "/ordered/b", rooms, timeout_s=30)  # the same room, other endpoint
    # By then the stuck webhook failed at most twice (1 s apart): its room's later
    # webhooks have not been tried on that endpoint.
    assert numbers(receiver.at("/ordered/a"), STUCK[0], False)[:2] == [1, 2]
    assert set(numbers(receiver.at("/ordered/a"), STUCK[0], False)) == {1, 2}
    receiver.wait_for("/ordered/a", len(others) * WEBHOOKS + 3, timeout_s=30)  # 2nd failure
    # Killed while the room waits: its later webhooks, moved to the retries topic behind the
    # failing one, must still wait for it under a new worker that reads them in any order.
    first.stop(signal.SIGKILL)
    start_worker(settings, "delivery")

    wait_accepted(receiver, "/ordered/a", [STUCK[0]], timeout_s=90)
    tried = numbers(receiver.at("/ordered/a"), STUCK[0], False)
    accepted = numbers(receiver.at("/ordered/a"), STUCK[0], True)
    assert tried.count(2) >= 4, tried  # three failures, then its success
    assert in_order(accepted), f"room {STUCK[0]} received {accepted}"
    for path, path_rooms in (("/ordered/a", others), ("/ordered/b", rooms)):
        for room in path_rooms:
            assert in_order(numbers(receiver.at(path), room, True)), (path, room)
    assert read_topic(applied_topics[Topic.WEBHOOK_DEAD_LETTERS]).settle(1) == []


def test_in_order_accepts_repeats_and_refuses_a_later_webhook_first() -> None:
    assert in_order([1, 2, 2, 3, 4, 5]) and in_order([1, 2, 1, 3])
    assert not in_order([1, 3, 2, 4, 5])

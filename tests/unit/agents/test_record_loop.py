"""Every agent's record loop: jobs sent, bad input and bugs kept on `rejected` with their
reason, every event finished; a failed Kafka write stops the loop with the event unfinished."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import REGISTRY

from streams.agents.sessions import JobSender, apply_each
from streams.core.events import InvalidEvent
from topics.catalogue import Topic, load_catalogue
from topics.records import RejectedRecord, WebhookJob

INPUT = "t-loop.omnichannel.messages"


class Message:
    def __init__(self, offset: int, value: bytes) -> None:
        self.topic, self.partition, self.offset = INPUT, 2, offset
        self.key, self.value = b"room-1", value
        self.headers: list[tuple[str, bytes]] = []  # Faust's: the record's Kafka headers


class Event:
    def __init__(self, message: Message) -> None:
        self.message = message
        self.acked = False

    def ack(self) -> None:
        self.acked = True


class Stream:
    def __init__(self, events: list[Event]) -> None:
        self._events = events

    def noack(self) -> Stream:
        return self

    async def events(self) -> AsyncIterator[Event]:
        for event in self._events:
            yield event


class JobsTopic:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def get_topic_name(self) -> str:
        return "omnichannel.webhook-jobs"

    def send_soon(self, key: bytes, value: bytes, partition: int | None) -> None:
        self.sent.append(value)


class RejectedTopic:
    def __init__(self, fails: bool = False) -> None:
        self.sent: list[RejectedRecord] = []
        self.fails = fails

    async def send(self, key: bytes | None, value: bytes) -> None:
        if self.fails:
            raise RuntimeError("KafkaError: the broker refused the write")
        self.sent.append(RejectedRecord.from_json(value))


def sender(rejected: RejectedTopic) -> tuple[JobSender, JobsTopic]:
    jobs = JobsTopic()
    omnihooks: Any = SimpleNamespace(
        app=SimpleNamespace(producer=None),
        topics={Topic.WEBHOOK_JOBS: jobs, Topic.REJECTED: rejected},
        catalogue=load_catalogue(),
    )
    return JobSender(omnihooks), jobs


def make_jobs(message: Any) -> list[WebhookJob]:
    if message.value == b"bad":
        raise InvalidEvent("not JSON")
    if message.value == b"bug":
        _ = 1 / 0
    return [WebhookJob(f"d-{message.offset}", "Message", "room-1", "http://crm/", {}, "t")]


def count(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_bad_input_and_a_bug_are_rejected_with_the_reason_and_every_event_finishes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rejected = RejectedTopic()
    out, jobs = sender(rejected)
    events = [Event(Message(n, value)) for n, value in enumerate([b"ok", b"bad", b"bug", b"ok"])]
    emitted = count("omnihooks_jobs_emitted_total", type="Message")
    refused = count("omnihooks_rejected_total", topic=INPUT)

    with caplog.at_level(logging.ERROR):
        await apply_each(Stream(events), out, make_jobs)  # type: ignore[arg-type]

    assert [WebhookJob.from_json(v).delivery_id for v in jobs.sent] == ["d-0", "d-3"]
    assert [(r.offset, r.reason) for r in rejected.sent] == [
        (1, "not JSON"),
        (2, "internal error: ZeroDivisionError: division by zero"),
    ]
    assert all(event.acked for event in events)
    assert f"failed on {INPUT}[2]@2" in caplog.text and "ZeroDivisionError" in caplog.text
    assert count("omnihooks_jobs_emitted_total", type="Message") == emitted + 2
    assert count("omnihooks_rejected_total", topic=INPUT) == refused + 2


async def test_a_failed_kafka_write_stops_the_loop_before_the_event_is_finished() -> None:
    out, _ = sender(RejectedTopic(fails=True))
    events = [Event(Message(0, b"bad")), Event(Message(1, b"ok"))]
    with pytest.raises(RuntimeError, match="refused"):
        await apply_each(Stream(events), out, make_jobs)  # type: ignore[arg-type]
    assert not events[0].acked and not events[1].acked

"""A realistic sample conversation as the chat stack would publish it (`omnihooks demo`).

It is the conversation behind the seed's two sample webhooks (tests/golden/rocketchat-2023/):
with close and agent-message webhooks on, the jobs it yields carry exactly those bodies.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from streams.engine.kafka import KafkaConfig, Writer
from topics import codec
from topics.catalogue import Topic

JSON = dict[str, Any]

ROOM_ID = "Tc5SyBZHovD4k8BXv"
VISITOR = {
    "_id": "63db8d4990fe6eda42ad429a",
    "token": "e36e352c742eee48860d576fcefb372afc44ebc95750fa1e3b646195f702341a",
    "name": "James",
    "username": "guest-3",
    "visitorEmails": [{"address": "fongang.rodrique+local-on@rocket.chat"}],
}
AGENT = {
    "_id": "aXjjcPwq4Pcp7xftH",
    "username": "user1",
    "name": "User One",
    "emails": [{"address": "uaser1@mail.com"}],
}
SERVED_BY = {"_id": AGENT["_id"], "username": "user1", "ts": "2023-02-02T10:16:07.375Z"}


@dataclass(frozen=True)
class InputRecord:
    topic: Topic
    key: bytes
    value: JSON

    def encoded(self) -> bytes:
        return codec.dumps(self.value)


def _room(room_id: str, **extra: Any) -> JSON:
    room: JSON = {
        "_id": room_id,
        "fname": "James",
        "ts": "2023-02-02T10:16:07.230Z",
        "v": {"_id": VISITOR["_id"], "token": VISITOR["token"], "username": "guest-3"},
    }
    room.update(extra)
    return room


def room_event(
    room_id: str, event: str, ts: str, room: JSON, agent: JSON | None, event_id: str, **extra: Any
) -> InputRecord:
    value: JSON = {
        "id": event_id,
        "event": event,
        "ts": ts,
        "room": room,
        "visitor": VISITOR,
        "agent": agent,
        **extra,
    }
    return InputRecord(Topic.ROOMS, room_id.encode(), value)


def message_event(
    room_id: str, message_id: str, ts: str, text: str, by_visitor: bool, event_id: str, **extra: Any
) -> InputRecord:
    author = VISITOR if by_visitor else AGENT
    message: JSON = {
        "_id": message_id,
        "rid": room_id,
        "msg": text,
        "ts": ts,
        "u": {"_id": author["_id"], "username": author["username"], "name": author["name"]},
    }
    if by_visitor:
        message["token"] = VISITOR["token"]
    message.update(extra)
    value = {"id": event_id, "event": "message", "ts": ts, "message": message}
    return InputRecord(Topic.MESSAGES, room_id.encode(), value)


def seed_conversation(room_id: str = ROOM_ID, run: str | None = None) -> list[InputRecord]:
    """Started, taken, four messages (the last the closing one), closed: the seed's chat."""
    run = run or uuid.uuid4().hex[:8]
    # Tags come with the close (the seed's Message sample has none, its close body has them).
    served = _room(room_id, servedBy=SERVED_BY)
    return [
        room_event(
            room_id, "started", "2023-02-02T10:16:07.230Z", _room(room_id), None, f"{run}-1"
        ),
        room_event(room_id, "taken", "2023-02-02T10:16:07.375Z", served, AGENT, f"{run}-2"),
        message_event(
            room_id, "2untSdndqBP7opGWw", "2023-02-02T10:16:09.615Z", "Hi", True, f"{run}-3"
        ),
        message_event(
            room_id,
            "7xjkw8ZFitMSNGmeJ",
            "2023-02-02T10:21:05.391Z",
            "How can I help you today?",
            False,
            f"{run}-4",
        ),
        message_event(
            room_id,
            "y7p77YFfkHJeg5gD9",
            "2023-02-02T10:22:14.087Z",
            "don't worry,thank you",
            True,
            f"{run}-5",
        ),
        message_event(
            room_id,
            "ciAggDuN8ioqDrTby",
            "2023-02-02T10:23:11.437Z",
            "Thank you for visiting",
            False,
            f"{run}-6",
            t="livechat-close",
        ),
        room_event(
            room_id,
            "closed",
            "2023-02-02T10:23:11.344Z",
            {
                **served,
                "tags": ["self"],
                "lm": "2023-02-02T10:22:14.087Z",
                "msgs": 4,
                "closedAt": "2023-02-02T10:23:11.344Z",
                "closedBy": {"_id": AGENT["_id"], "username": "user1"},
                "closer": "user",
            },
            AGENT,
            f"{run}-7",
        ),
    ]


def produce(
    kafka: KafkaConfig | str, prefix: str, records: list[InputRecord], gap_s: float = 0.0
) -> int:
    """Publish records in order (acks=all, idempotent), `gap_s` apart; returns the count."""
    writer = Writer(KafkaConfig(kafka) if isinstance(kafka, str) else kafka, **{"linger.ms": 5})
    for record in records:
        writer.write(f"{prefix}{record.topic.value}", record.key, record.encoded())
        # One record at a time: the demo's order across the rooms and messages topics is
        # the conversation's order.
        writer.flush(30)
        time.sleep(gap_s)
    return len(records)

"""Bad input gets a clear reason; good input decodes with absent and null kept apart."""

import pytest

from streams.core.events import (
    InvalidEvent,
    MessageEvent,
    RoomEvent,
    decode_message_event,
    decode_offline_message,
    decode_room_event,
)
from topics import codec

ROOM = b"Tc5SyBZHovD4k8BXv"


def room_record(**changes: object) -> bytes:
    value: dict[str, object] = {
        "id": "e1", "event": "taken", "ts": "2023-02-02T10:16:07.375Z",
        "room": {"_id": "Tc5SyBZHovD4k8BXv", "ts": "2023-02-02T10:16:07.230Z"},
        "visitor": {"_id": "v1", "token": "t"}, "agent": None,
    }  # fmt: skip
    value.update(changes)
    return codec.dumps(value)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not a JSON object but list"),
        (room_record(event="exploded"), "unknown event 'exploded'"),
        (room_record(id=7), "id must be a non-empty string, got int"),
        (room_record(room=None), "room must be an object, got null"),
        (room_record(room={"fname": "x"}), "room._id must be a non-empty string, got nothing"),
        (room_record(agent="bob"), "agent must be an object or null"),
        (room_record(event="closed", room={"_id": "Tc5SyBZHovD4k8BXv", "msgs": -1}), "room.msgs"),
    ],
)
def test_bad_room_records_say_why(raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidEvent, match=reason.replace("(", r"\(")):
        decode_room_event(ROOM, raw, 1 << 20)


def test_record_over_the_size_limit_is_rejected() -> None:
    with pytest.raises(InvalidEvent, match="over the 100-byte limit"):
        decode_room_event(ROOM, room_record(pad="x" * 200), 100)


def test_record_keyed_by_something_else_than_the_room_is_rejected() -> None:
    with pytest.raises(InvalidEvent, match="keyed by the room _id"):
        decode_room_event(b"other", room_record(), 1 << 20)
    with pytest.raises(InvalidEvent, match="no key"):
        decode_room_event(None, room_record(), 1 << 20)


def test_null_agent_and_absent_agent_differ() -> None:
    with_null = decode_room_event(ROOM, room_record(), 1 << 20)
    value = codec.loads(room_record())
    del value["agent"]
    absent = decode_room_event(ROOM, codec.dumps(value), 1 << 20)
    assert isinstance(with_null, RoomEvent) and isinstance(absent, RoomEvent)
    assert with_null.has_agent and with_null.agent is None
    assert not absent.has_agent


def test_message_needs_author_and_time() -> None:
    good = {"id": "m", "event": "message", "ts": "t",
            "message": {"_id": "x", "rid": "Tc5SyBZHovD4k8BXv", "ts": "t", "u": {"_id": "u"}}}  # fmt: skip
    assert decode_message_event(ROOM, codec.dumps(good), 1 << 20).message_id == "x"
    bad = {**good, "message": {"_id": "x", "rid": "Tc5SyBZHovD4k8BXv", "ts": "t"}}
    with pytest.raises(InvalidEvent, match=r"message\.u must be an object"):
        decode_message_event(ROOM, codec.dumps(bad), 1 << 20)
    deleted = {
        "id": "d",
        "event": "deleted",
        "ts": "t",
        "message": {"_id": "x", "rid": "Tc5SyBZHovD4k8BXv"},
    }
    assert decode_message_event(ROOM, codec.dumps(deleted), 1 << 20).event == "deleted"


def test_offline_message_needs_its_form_fields() -> None:
    good = {"id": "o", "event": "offline_message", "ts": "t", "name": "Ana",
            "email": "ana@example.com", "message": "Call me back", "host": "https://shop"}  # fmt: skip
    event = decode_offline_message(codec.dumps(good), 1 << 20)
    assert event.email == "ana@example.com" and event.department is None
    with pytest.raises(InvalidEvent, match="email must be a non-empty string"):
        decode_offline_message(codec.dumps({**good, "email": ""}), 1 << 20)


def test_the_rooms_topic_also_carries_message_events_for_the_single_topic_layout() -> None:
    raw = codec.dumps(
        {
            "id": "e1",
            "event": "message",
            "ts": "2024-01-01T00:00:00.000Z",
            "message": {
                "_id": "m1",
                "rid": "r1",
                "msg": "hi",
                "ts": "2024-01-01T00:00:00.000Z",
                "u": {"_id": "u1"},
            },
        }
    )
    event = decode_room_event(b"r1", raw, 1 << 20)
    assert isinstance(event, MessageEvent)
    assert (event.room_id, event.message_id) == ("r1", "m1")
    with pytest.raises(InvalidEvent, match="must be keyed by the room _id"):
        decode_room_event(b"other", raw, 1 << 20)

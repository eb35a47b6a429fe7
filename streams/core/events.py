"""Input events: decode and validate the chat stack's records (contract: "Input events").

Everything wrong with a record raises `InvalidEvent(reason)`; the agent sends the record to
the rejected topic with that reason and goes on. The Rocket.Chat documents inside (room,
visitor, agent, message) are kept as the plain dicts the chat stack sent, because absent and
`null` fields must reach the webhook as they came.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from topics import codec
from topics.records import INTERNAL_EVENTS, CrmDataRecord

JSON = dict[str, Any]

ROOM_EVENTS = frozenset({"started", "queued", "taken", "forwarded", "closed", "updated"})
MESSAGE_EVENTS = frozenset({"message", "deleted"})
# Written by omnihooks itself onto the rooms topic (keyed by room id, so they reach the
# worker that owns the room's state): Faust tables can only change inside stream iteration.
INTERNAL_ROOM_EVENTS = frozenset(INTERNAL_EVENTS)


class InvalidEvent(ValueError):
    """A record that cannot be used; `reason` says why, for the rejected topic."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class RoomEvent:
    id: str
    event: str
    ts: str
    workspace: str | None
    room: JSON
    visitor: JSON | None
    agent: JSON | None
    has_visitor: bool  # `visitor` present in the record (null and absent differ)
    has_agent: bool
    transfer: JSON | None

    @property
    def room_id(self) -> str:
        return str(self.room["_id"])


@dataclass(frozen=True)
class MessageEvent:
    id: str
    event: Literal["message", "deleted"]
    ts: str
    workspace: str | None
    message: JSON

    @property
    def room_id(self) -> str:
        return str(self.message["rid"])

    @property
    def message_id(self) -> str:
        return str(self.message["_id"])


@dataclass(frozen=True)
class OfflineMessageEvent:
    id: str
    ts: str
    workspace: str | None
    name: str
    email: str
    message: str
    department: str | None
    host: str | None


@dataclass(frozen=True)
class InternalRoomEvent:
    id: str
    event: str
    ts: str
    room_id: str
    ref: str | None  # e.g. the close event a close-due event is for


CrmData = CrmDataRecord  # what the sessions agent reads back from crm-data


def _object(raw: bytes, max_bytes: int) -> JSON:
    if len(raw) > max_bytes:
        raise InvalidEvent(f"record is {len(raw)} bytes, over the {max_bytes}-byte limit")
    try:
        value = codec.loads(raw)
    except codec.JSONDecodeError as exc:
        raise InvalidEvent(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidEvent(f"not a JSON object but {type(value).__name__}")
    return value


_ABSENT = object()


def _text(data: JSON, field: str, where: str = "") -> str:
    value = data.get(field, _ABSENT)
    if not isinstance(value, str) or not value:
        raise InvalidEvent(f"{where}{field} must be a non-empty string, got {_shown(value)}")
    return value


def _optional_text(data: JSON, field: str, where: str = "") -> str | None:
    value = data.get(field)
    if value is not None and not isinstance(value, str):
        raise InvalidEvent(f"{where}{field} must be a string or null, got {_shown(value)}")
    return value


def _optional_object(data: JSON, field: str) -> JSON | None:
    value = data.get(field)
    if value is not None and not isinstance(value, dict):
        raise InvalidEvent(f"{field} must be an object or null, got {_shown(value)}")
    return value


def _shown(value: object) -> str:
    if value is _ABSENT:
        return "nothing"
    if value is None:
        return "null"
    return f"{type(value).__name__} {str(value)[:40]!r}"


def _envelope(data: JSON, allowed: frozenset[str]) -> tuple[str, str, str, str | None]:
    event_id = _text(data, "id")
    event = _text(data, "event")
    if event not in allowed:
        raise InvalidEvent(f"unknown event {event!r}; expected one of {sorted(allowed)}")
    ts = _text(data, "ts")
    workspace = _optional_text(data, "workspace")
    return event_id, event, ts, workspace


def _check_key(key: bytes | None, room_id: str) -> None:
    # rooms and messages are co-partitioned by room id: a record keyed otherwise would land
    # on a worker that does not hold its room, and its state would split.
    if key is None or key.decode("utf-8", "replace") != room_id:
        shown = "no key" if key is None else f"key {key[:60]!r}"
        raise InvalidEvent(f"record has {shown}; it must be keyed by the room _id {room_id!r}")


def decode_room_event(
    key: bytes | None, raw: bytes, max_bytes: int
) -> RoomEvent | InternalRoomEvent | MessageEvent:
    """A record of the rooms topic. Message events may share it: one topic per room keeps a
    producer's order without any merging (docs/design/order-merge.md, "The one-topic layout")."""
    data = _object(raw, max_bytes)
    event_id, event, ts, workspace = _envelope(
        data, ROOM_EVENTS | INTERNAL_ROOM_EVENTS | MESSAGE_EVENTS
    )
    if event in MESSAGE_EVENTS:
        return _message_event(key, data, event_id, event, ts, workspace)
    if event in INTERNAL_ROOM_EVENTS:
        room_id = _text(data, "room_id")
        _check_key(key, room_id)
        return InternalRoomEvent(event_id, event, ts, room_id, _optional_text(data, "ref"))
    room = data.get("room", _ABSENT)
    if not isinstance(room, dict):
        raise InvalidEvent(f"room must be an object, got {_shown(room)}")
    room_id = _text(room, "_id", "room.")
    _check_key(key, room_id)
    visitor = _optional_object(data, "visitor")
    agent = _optional_object(data, "agent")
    transfer = _optional_object(data, "transfer")
    if event == "closed":
        msgs = room.get("msgs")
        if msgs is not None and (not isinstance(msgs, int) or isinstance(msgs, bool) or msgs < 0):
            raise InvalidEvent(f"room.msgs must be a count, got {_shown(msgs)}")
    return RoomEvent(
        id=event_id,
        event=event,
        ts=ts,
        workspace=workspace,
        room=room,
        visitor=visitor,
        agent=agent,
        has_visitor="visitor" in data,
        has_agent="agent" in data,
        transfer=transfer,
    )


def decode_message_event(key: bytes | None, raw: bytes, max_bytes: int) -> MessageEvent:
    """A record of the messages topic."""
    data = _object(raw, max_bytes)
    event_id, event, ts, workspace = _envelope(data, MESSAGE_EVENTS)
    return _message_event(key, data, event_id, event, ts, workspace)


def _message_event(
    key: bytes | None, data: JSON, event_id: str, event: str, ts: str, workspace: str | None
) -> MessageEvent:
    message = data.get("message", _ABSENT)
    if not isinstance(message, dict):
        raise InvalidEvent(f"message must be an object, got {_shown(message)}")
    _text(message, "_id", "message.")
    room_id = _text(message, "rid", "message.")
    _check_key(key, room_id)
    if event == "message":
        _text(message, "ts", "message.")
        author = message.get("u", _ABSENT)
        if not isinstance(author, dict):
            raise InvalidEvent(f"message.u must be an object, got {_shown(author)}")
        _text(author, "_id", "message.u.")
        for field in ("msg", "t", "token", "editedAt"):
            _optional_text(message, field, "message.")
    return MessageEvent(event_id, event, ts, workspace, message)  # type: ignore[arg-type]


class _Author(msgspec.Struct):
    token: Any = None


class _AuthorProbe(msgspec.Struct):
    message: _Author | None = None


_decode_author = msgspec.json.Decoder(_AuthorProbe).decode


def written_by_visitor(raw: bytes) -> bool:
    """Whether a messages-topic record is a visitor's (it carries the visitor's token), at a
    glance: the record is decoded in full, and checked, when it is applied."""
    try:
        probe = _decode_author(raw)
    except msgspec.DecodeError:
        return True  # not usable: rejected when applied, nothing to wait for
    return probe.message is not None and probe.message.token is not None


def decode_offline_message(raw: bytes, max_bytes: int) -> OfflineMessageEvent:
    """A record of the offline-messages topic (any key)."""
    data = _object(raw, max_bytes)
    event_id, _, ts, workspace = _envelope(data, frozenset({"offline_message"}))
    return OfflineMessageEvent(
        id=event_id,
        ts=ts,
        workspace=workspace,
        name=_text(data, "name"),
        email=_text(data, "email"),
        message=_text(data, "message"),
        department=_optional_text(data, "department"),
        host=_optional_text(data, "host"),
    )


def decode_crm_data(raw: bytes, max_bytes: int) -> CrmData:
    data = _object(raw, max_bytes)
    return CrmData(
        room_id=_text(data, "room_id"),
        body=str(data.get("body", "")),
        delivery_id=_text(data, "delivery_id"),
        received_at=_text(data, "received_at"),
    )

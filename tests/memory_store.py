"""A dict-backed SessionStore, so the session core runs without Kafka in unit tests."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from streams.sessions import RoomState
from topics import codec


class MemoryStore:
    def __init__(self) -> None:
        self.rooms_: dict[str, bytes] = {}
        self.messages: dict[tuple[str, str], bytes] = {}
        self.order: dict[tuple[str, int], str] = {}

    def load(self, room_id: str) -> RoomState | None:
        raw = self.rooms_.get(room_id)
        return None if raw is None else RoomState.from_json(raw)

    def save(self, room_id: str, state: RoomState) -> None:
        self.rooms_[room_id] = state.to_json()  # a round trip, as the table does

    def drop(self, room_id: str, state: RoomState) -> None:
        for seq in range(state.next_seq):
            message_id = self.order.pop((room_id, seq), None)
            if message_id is not None:
                self.messages.pop((room_id, message_id), None)
        self.rooms_.pop(room_id, None)

    def message(self, room_id: str, message_id: str) -> dict[str, Any] | None:
        raw = self.messages.get((room_id, message_id))
        return None if raw is None else codec.loads(raw)

    def put_message(
        self, room_id: str, message_id: str, message: dict[str, Any], seq: int | None
    ) -> None:
        self.messages[(room_id, message_id)] = codec.dumps(message)
        if seq is not None:
            self.order[(room_id, seq)] = message_id

    def delete_message(self, room_id: str, message_id: str) -> None:
        self.messages.pop((room_id, message_id), None)

    def transcript(self, room_id: str, next_seq: int) -> Iterator[dict[str, Any]]:
        for seq in range(next_seq):
            message_id = self.order.get((room_id, seq))
            if message_id is not None and (room_id, message_id) in self.messages:
                yield codec.loads(self.messages[(room_id, message_id)])

    def rooms(self) -> Iterable[tuple[str, RoomState]]:
        return [(room_id, RoomState.from_json(raw)) for room_id, raw in self.rooms_.items()]

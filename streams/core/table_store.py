"""Room state and transcripts in three key-value tables, with the keys the worker's Faust
tables (and their changelogs) hold. No Faust here: any `MutableMapping[bytes, bytes]` is a
table, so tests run this very class over dicts.

- `rooms`: room id -> `RoomState` (JSON);
- `messages`: room id, SEP, message id -> the stored message (JSON: `{"m": message,
  "seq": n, "src": "topic:partition:offset"}`, and `"del": source` once deleted;
  a bare message from before `seq`/`src` were kept reads as a message with neither);
- `message-order`: room id, SEP, sequence -> message id;
- `visitor-rooms`: a visitor's rooms by identity digest and partition (`VisitorIndex`,
  streams/core/erasure.py): how an erasure finds them without reading every room.

One input record writes at most these three keys: three changelog records, not one atomic
step. A crash can keep any of them and lose the others (each is its own batch on its own
partition); the record is then read again (its offset was not committed) and
`SessionProcessor` redoes it from what survived: a message (or a delete marker) whose
`src`/`del` is this very record was written by it, and the room state's `seen` entry tells
whether the counts were taken and which place the message got.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, MutableMapping

from streams.core.erasure import VisitorIndex, visitor_digests
from streams.core.sessions import JSON
from topics.state import RoomState, StoredMessage

SEP = "\x1f"  # between room id and message id/sequence in keys; never in Rocket.Chat ids

Table = MutableMapping[bytes, bytes]

# Rooms kept decoded after their last save. Decoding a room state is most of a chat
# message's own cost (more as `seen` fills): a room's next record usually comes while its
# state is still kept. Bounded, so a worker holding a million rooms keeps its memory flat.
ROOMS_KEPT_DECODED = 1024


class TableStore:
    """`SessionStore` over the three tables."""

    def __init__(
        self, rooms: Table, messages: Table, order: Table, visitors: Table | None = None
    ) -> None:
        self._rooms = rooms
        self._messages = messages
        self._order = order
        self.visitors = VisitorIndex({} if visitors is None else visitors)
        # room key -> (the bytes saved, the state they were made from). `load` takes the
        # entry out: the caller owns that object and may change it, and what it does not
        # save (a record that fails half-way) must not be seen again. A store value that
        # is not the one kept (recovery, another writer) is decoded instead.
        self._decoded: dict[bytes, tuple[bytes, RoomState]] = {}

    def load(self, room_id: str) -> RoomState | None:
        key = room_id.encode()
        raw = self._rooms.get(key)
        kept = self._decoded.pop(key, None)
        if raw is None:
            return None
        if kept is not None and (kept[0] is raw or kept[0] == raw):
            return kept[1]
        return RoomState.from_json(raw)

    def peek(self, room_id: str) -> RoomState | None:
        """The room as saved, to read only: the decoded copy is left where it is."""
        key = room_id.encode()
        raw = self._rooms.get(key)
        if raw is None:
            return None
        kept = self._decoded.get(key)
        if kept is not None and (kept[0] is raw or kept[0] == raw):
            return kept[1]
        return RoomState.from_json(raw)

    def save(self, room_id: str, state: RoomState) -> None:
        key, raw = room_id.encode(), state.to_json()
        self._rooms[key] = raw
        decoded = self._decoded
        decoded[key] = (raw, state)
        if len(decoded) > ROOMS_KEPT_DECODED:
            del decoded[next(iter(decoded))]  # the longest unsaved: dicts keep insert order

    def drop(self, room_id: str, state: RoomState, erasing: bool = False) -> int:
        """The room, its messages, their order and its index entries gone; returns the
        messages dropped. `erasing`: the order and index entries stay (message ids and
        digests, none of the visitor's data) until the room's erasure marker expires, so an
        erasure a crash cut short can find the room and its messages again."""
        self._decoded.pop(room_id.encode(), None)
        dropped = 0
        prefix = f"{room_id}{SEP}".encode()
        for seq in range(state.next_seq):
            key = self._order_key(room_id, seq)
            message_id = self._order.get(key) if erasing else self._order.pop(key, None)
            if message_id is None:
                continue
            if self._messages.pop(prefix + message_id, None) is not None:
                dropped += 1
        self._rooms.pop(room_id.encode(), None)
        if state.partition is not None and not erasing:
            for digest in visitor_digests(state.visitor) | set(state.indexed):
                self.visitors.remove(digest, state.partition, room_id)
        return dropped

    def message(self, room_id: str, message_id: str) -> StoredMessage | None:
        raw = self._messages.get(self._message_key(room_id, message_id))
        return None if raw is None else StoredMessage.from_json(raw)

    def put_message(self, room_id: str, message_id: str, stored: StoredMessage) -> None:
        self._messages[self._message_key(room_id, message_id)] = stored.to_json()
        if stored.seq is not None:
            self._order[self._order_key(room_id, stored.seq)] = message_id.encode()

    def transcript(
        self, room_id: str, next_seq: int, keep_deleted: Callable[[str], bool] | None = None
    ) -> Iterator[JSON]:
        prefix = f"{room_id}{SEP}".encode()
        for seq in range(next_seq):
            message_id = self._order.get(prefix + str(seq).encode())
            if message_id is None:
                continue
            raw = self._messages.get(prefix + message_id)
            if raw is not None:
                stored = StoredMessage.from_json(raw)
                deleted_by = stored.deleted_by
                if deleted_by is None or (keep_deleted is not None and keep_deleted(deleted_by)):
                    yield stored.message

    def raw_rooms(self) -> Iterable[tuple[str, bytes]]:
        # Lazily: on RocksDB a copy of every room would be the memory the disk store saves.
        for key, raw in self._rooms.items():
            if raw is not None:
                yield key.decode(), raw

    @staticmethod
    def _message_key(room_id: str, message_id: str) -> bytes:
        return f"{room_id}{SEP}{message_id}".encode()

    @staticmethod
    def _order_key(room_id: str, seq: int) -> bytes:
        return f"{room_id}{SEP}{seq}".encode()

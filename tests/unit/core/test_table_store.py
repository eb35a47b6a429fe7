"""The room states `TableStore` keeps decoded between a save and the room's next load: the
webhooks and tables are those of decoding every load, and what a record changed without
saving is never seen again."""

from __future__ import annotations

from typing import Any

import pytest

from streams.core import table_store
from streams.core.table_store import TableStore
from streams.dev import demo
from tests.unit.core.test_crash_atomicity import (
    CLOSE,
    DELETE,
    EDIT,
    FORWARD,
    LEAD,
    SECOND,
    RecordingTable,
    processor_over,
)
from tests.unit.core.test_sessions import Feed
from topics import codec
from topics.state import RoomState, SeenEntry

ROOM = "room-kept"


def store_over_dicts() -> tuple[TableStore, list[dict[bytes, bytes]]]:
    tables: list[dict[bytes, bytes]] = [{}, {}, {}]
    return TableStore(*tables), tables


def test_a_room_changed_but_not_saved_is_read_again_as_it_was_saved() -> None:
    """A record that fails half-way leaves the room as its last save: the next record must
    not get the object the failed one changed."""
    store, _ = store_over_dicts()
    store.save(ROOM, RoomState(present=1, seen=[SeenEntry("e1", "messages", 0, 0)]))
    changed = store.load(ROOM)
    assert changed is not None
    changed.present = 99
    changed.seen.append(SeenEntry("e2", "messages", 0, 1))
    again = store.load(ROOM)
    assert again is not None
    assert (again.present, again.seen) == (1, [SeenEntry("e1", "messages", 0, 0)])


def test_a_room_written_by_another_hand_is_read_from_the_table() -> None:
    """Recovery (or anything else) writing the rooms table wins over the state kept."""
    store, (rooms, _, _) = store_over_dicts()
    store.save(ROOM, RoomState(present=1))
    rooms[ROOM.encode()] = RoomState(present=7).to_json()
    loaded = store.load(ROOM)
    assert loaded is not None and loaded.present == 7
    del rooms[ROOM.encode()]
    store.save(ROOM, RoomState(present=2))
    rooms.pop(ROOM.encode())
    assert store.load(ROOM) is None


def test_the_rooms_kept_decoded_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(table_store, "ROOMS_KEPT_DECODED", 5)
    store, (rooms, _, _) = store_over_dicts()
    for n in range(50):
        store.save(f"r{n}", RoomState(present=n))
    assert len(store._decoded) == 5  # the last five saved
    assert [store.load(f"r{n}").present for n in (0, 47, 49)] == [0, 47, 49]  # type: ignore[union-attr]
    assert len(rooms) == 50


def conversation(room: str) -> list[demo.InputRecord]:
    """A room with leads, an edit, a delete, a forward and a close, on `room`."""
    records = [*demo.seed_conversation(room, run=room)[:3], LEAD, SECOND, EDIT, FORWARD,
               DELETE, CLOSE]  # fmt: skip
    out = []
    for record in records:
        value: Any = codec.loads(codec.dumps(record.value))
        value["id"] = f"{room}-{value['id']}"
        (value.get("message") or {})["rid"] = room
        value.get("room", {})["_id"] = room
        out.append(demo.InputRecord(record.topic, room.encode(), value))
    return out


def run(kept: int, monkeypatch: pytest.MonkeyPatch) -> tuple[list[Any], list[dict[bytes, Any]]]:
    """Three rooms' conversations interleaved record by record, each record then read again
    at the same offset (a redelivery), through a store keeping `kept` rooms decoded."""
    monkeypatch.setattr(table_store, "ROOMS_KEPT_DECODED", kept)
    tables = [RecordingTable(n) for n in range(3)]  # logging nothing: plain tables
    feed = Feed(processor_over(tables))
    rooms = [conversation(f"room-{n}") for n in range(3)]
    jobs: list[Any] = []
    for step in zip(*rooms, strict=True):
        for record in step:
            made = [*feed(record), *feed(record, feed.offsets[record.topic])]
            jobs += [(job.type, job.delivery_id, job.sequence, job.body) for job in made]
    rooms_, messages, order = tables
    decoded = [{key: codec.loads(value) for key, value in t.items()} for t in (rooms_, messages)]
    return jobs, [*decoded, dict(order)]


@pytest.mark.parametrize("kept", [2, 1024])
def test_rooms_kept_decoded_make_the_webhooks_and_tables_of_decoding_each_time(
    kept: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded_each_time = run(0, monkeypatch)
    assert len(decoded_each_time[0]) >= 3 * 5  # messages, lead capture, forward, close
    assert run(kept, monkeypatch) == decoded_each_time


def test_a_kept_room_is_not_decoded_again() -> None:
    """What keeping them saves: the room's next record takes the state as saved."""
    store, _ = store_over_dicts()
    state = RoomState(present=3)
    store.save(ROOM, state)
    assert store.load(ROOM) is state

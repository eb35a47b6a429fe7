"""The internal records omnihooks writes back to its inputs decode as the agents read them."""

from __future__ import annotations

from streams.core.events import InternalRoomEvent, decode_crm_data, decode_room_event
from streams.core.sessions import DueEvent
from topics import codec
from topics.records import CrmDataRecord


def test_a_crm_answer_record_reads_back_field_for_field() -> None:
    record = CrmDataRecord("room-1", '{"contactId": 42}', "d-1", "2026-11-25T10:00:00.000Z")
    raw = record.to_json()
    assert list(codec.loads(raw)) == ["room_id", "body", "delivery_id", "received_at"]
    assert decode_crm_data(raw, 1 << 20) == record


def test_a_due_event_is_an_internal_room_event_keyed_by_its_room() -> None:
    raw = DueEvent("room-1", "omnihooks.close-due", "close-7", partition=2).to_json(1_700_000_000.0)
    assert list(codec.loads(raw)) == ["id", "event", "ts", "room_id", "ref"]
    event = decode_room_event(b"room-1", raw, 1 << 20)
    assert isinstance(event, InternalRoomEvent)
    assert (event.event, event.room_id, event.ref) == ("omnihooks.close-due", "room-1", "close-7")
    assert event.ts == "2023-11-14T22:13:20.000Z"

"""The table formats are typed records, and what older workers wrote still reads."""

from __future__ import annotations

from typing import Any

from streams.core.leads import compile_lead_patterns
from streams.core.table_store import TableStore
from streams.dev import demo
from streams.settings import load_settings
from tests.support.files import GOLDEN
from tests.support.sessions import processor_for
from tests.unit.core.test_sessions import Clock, Feed
from topics import codec
from topics.state import (
    BeforeImage,
    CompletedClose,
    PendingClose,
    RoomState,
    SeenEntry,
    StoredMessage,
)

BEFORE_TYPED = GOLDEN / "state" / "session-tables-before-typed-records.json"


def tables_before_typed_records() -> tuple[dict[str, Any], tuple[dict[bytes, bytes], ...]]:
    saved = codec.loads(BEFORE_TYPED.read_bytes())
    tables = tuple(
        {key.encode("latin-1"): value.encode() for key, value in saved[name].items()}
        for name in ("rooms", "messages", "message-order")
    )
    return saved, tables


def test_a_room_state_of_the_positional_format_reads_as_named_records() -> None:
    _, (rooms, messages, _) = tables_before_typed_records()
    room = RoomState.from_json(rooms[demo.ROOM_ID.encode()])
    assert room.pending_close == PendingClose("v1-7", None, 9, 1700000030.0)
    assert (room.next_seq, room.present) == (5, 4)
    by_event = {entry.event_id: entry for entry in room.seen}
    agent_reply = by_event["v1-4"]
    assert (agent_reply.topic, agent_reply.partition, agent_reply.offset, agent_reply.seq) == (
        "messages", 0, 1, 1,
    )  # fmt: skip
    assert agent_reply.before == BeforeImage(
        lm="2023-02-02T10:16:09.615Z", next_seq=1, emails=1, phones=None, present=1,
        webhooks={"default": 1},
    )  # fmt: skip
    assert by_event["v1-lead"].before is not None and by_event["v1-lead"].before.emails == 1
    # Re-encoded in today's format, it reads back the same.
    assert RoomState.from_json(room.to_json()) == room
    lead = StoredMessage.from_json(messages[f"{demo.ROOM_ID}\x1fm-lead".encode()])
    assert (lead.seq, lead.source, lead.deleted_by) == (4, "messages:0:4", "messages:0:5")


def test_a_record_redone_over_tables_of_the_positional_format_makes_the_same_jobs() -> None:
    """The upgrade's real risk: a worker of this version reads again, after a crash, a
    record that a worker of the previous version applied; its before-image must give the
    same webhook numbers and the same delivery ids."""
    saved, tables = tables_before_typed_records()
    settings = load_settings(webhook_url="http://crm.test/hook", send_on_close=True,
                             send_on_agent_message=True, send_on_visitor_message=True,
                             send_on_lead_capture=True, close_grace_s=30)  # fmt: skip
    leads = compile_lead_patterns(settings.lead_email_regex, settings.lead_phone_regex)
    processor = processor_for(settings, TableStore(*tables), leads, Clock())
    lead = demo.message_event(demo.ROOM_ID, "m-lead", "2023-02-02T10:17:00.000Z",
                              "mail me at lead@example.com", True, "v1-lead")  # fmt: skip
    jobs = Feed(processor)(lead, offset=saved["lead_record"]["offset"])
    assert [
        {"delivery_id": job.delivery_id, "type": job.type, "sequence": job.sequence} for job in jobs
    ] == saved["lead_record"]["jobs"]


def test_older_shapes_read_with_their_defaults() -> None:
    # Before endpoints: one webhook count; an image of four values; a bare stored message.
    old_room = b'{"room":null,"webhooks":3,"seen":[["e1","rooms",0,7,null,[null,0,null,null]]]}'
    room = RoomState.from_json(old_room)
    assert room.webhooks == {"default": 3}
    assert room.seen == [SeenEntry("e1", "rooms", 0, 7, None, BeforeImage(None, 0, None, None))]
    bare = StoredMessage.from_json(b'{"_id":"m1","msg":"hi"}')
    assert bare == StoredMessage({"_id": "m1", "msg": "hi"}, None, None)


def test_entries_and_images_are_arrays_and_a_completed_close_is_named() -> None:
    image = BeforeImage("t", 2, 1, None, 2, CompletedClose("c1", None, 3), {"default": 4})
    entry = SeenEntry("e1", "messages", 1, 9, 2, image)
    assert codec.loads(RoomState(seen=[entry]).to_json())["seen"] == [
        ["e1", "messages", 1, 9, 2, ["t", 2, 1, None, 2, ["c1", None, 3], {"default": 4}]]
    ]
    assert RoomState.nothing_scheduled(RoomState(seen=[entry]).to_json())
    assert not RoomState.nothing_scheduled(RoomState(closed_at=5.0).to_json())
    nested = RoomState(room={"pending_close": {"x": 1}, "closed_at": 3})
    assert RoomState.nothing_scheduled(nested.to_json())

"""The session core without Kafka: state, triggers, late messages, duplicates, leads, expiry."""

from __future__ import annotations

from typing import Any

import pytest

from streams.core.events import (
    OfflineMessageEvent,
    decode_message_event,
    decode_room_event,
    written_by_visitor,
)
from streams.core.leads import compile_lead_patterns
from streams.core.sessions import SessionProcessor, Source
from streams.dev import demo
from streams.settings import Settings, load_settings
from tests.support.files import SEED
from tests.support.memory_store import MemoryStore
from tests.support.sessions import processor_for
from topics import codec
from topics.catalogue import Topic
from topics.records import WebhookJob

ROOM = demo.ROOM_ID


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def make(**overrides: Any) -> tuple[SessionProcessor, MemoryStore, Clock]:
    values: dict[str, Any] = {"webhook_url": "http://crm.test/hook"}
    values.update(overrides)
    settings: Settings = load_settings(**values)
    store, clock = MemoryStore(), Clock()
    leads = compile_lead_patterns(settings.lead_email_regex, settings.lead_phone_regex)
    return processor_for(settings, store, leads, clock), store, clock


class Feed:
    """Feeds InputRecords through the processor with increasing offsets per topic."""

    def __init__(self, processor: SessionProcessor, partition: int = 0) -> None:
        self.processor = processor
        self.partition = partition
        self.offsets: dict[Topic, int] = {}

    def __call__(self, record: demo.InputRecord, offset: int | None = None) -> list[WebhookJob]:
        if offset is None:
            offset = self.offsets.get(record.topic, -1) + 1
            self.offsets[record.topic] = offset
        source = Source(record.topic.value, self.partition, offset)
        raw = record.encoded()
        if record.topic is Topic.ROOMS:
            event = decode_room_event(record.key, raw, 1 << 20)
            return self.processor.on_room_event(event, source)  # type: ignore[arg-type]
        return self.processor.on_message_event(
            decode_message_event(record.key, raw, 1 << 20), source
        )

    def all(self, records: list[demo.InputRecord]) -> list[WebhookJob]:
        jobs: list[WebhookJob] = []
        for record in records:
            jobs += self(record)
        return jobs


def seed_json(name: str) -> Any:
    return codec.loads((SEED / name).read_bytes())


def test_seed_conversation_yields_the_seed_bodies_key_for_key() -> None:
    processor, _, _ = make(send_on_close=True, send_on_agent_message=True)
    jobs = Feed(processor).all(demo.seed_conversation())
    # 2023 servers send the closing comment as its own agent Message (sendToCRM.js).
    assert [job.type for job in jobs] == ["Message", "Message", "LivechatSession"]
    message, closing, session = jobs
    # The agent's first answer is the seed's Message sample; byte-equal JSON proves key order.
    assert codec.dumps(message.body) == codec.dumps(seed_json("message.json"))
    assert closing.body["messages"][0]["closingMessage"] is True
    assert codec.dumps(session.body) == codec.dumps(seed_json("livechat-session.json"))
    assert session.url == "http://crm.test/hook" and session.room_id == ROOM


def test_nothing_is_emitted_without_a_webhook_url() -> None:
    processor, store, _ = make(webhook_url="", send_on_close=True, send_on_start=True)
    assert Feed(processor).all(demo.seed_conversation()) == []
    assert store.load(ROOM) is not None  # state is still kept


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("send_on_start", "LivechatSessionStart"),
        ("send_on_chat_taken", "LivechatSessionTaken"),
        ("send_on_visitor_message", "Message"),
    ],
)
def test_each_trigger_is_gated_by_its_setting(setting: str, expected: str) -> None:
    # rocketchat-7: a visitor Message needs only its own setting (2023 needs the agent's too)
    processor, _, _ = make(**{setting: True}, compat="rocketchat-7")
    types = [job.type for job in Feed(processor).all(demo.seed_conversation())]
    assert expected in types
    assert "LivechatSession" not in types
    off, _, _ = make()
    assert Feed(off).all(demo.seed_conversation()) == []


def test_close_waits_for_late_messages_then_carries_them() -> None:
    processor, _, _ = make(send_on_close=True)
    feed = Feed(processor)
    records = demo.seed_conversation()
    closing_message, close = records[5], records[6]
    assert feed.all(records[:5]) == []
    assert feed(close) == []  # 3 of 4 messages: wait
    [job] = feed(closing_message)
    assert job.type == "LivechatSession"
    assert [m["_id"] for m in job.body["messages"]][-1] == "ciAggDuN8ioqDrTby"
    assert job.body["messages"][-1]["closingMessage"] is True


def test_close_is_sent_as_is_after_the_grace_period() -> None:
    processor, _, clock = make(send_on_close=True, close_grace_s=30)
    feed = Feed(processor)
    records = demo.seed_conversation()
    feed.all(records[:5])
    feed(records[6])
    assert processor.due_events() == []
    clock.now += 31
    [due] = processor.due_events()
    assert due.event == "omnihooks.close-due"
    internal = decode_room_event(ROOM.encode(), due.to_json(clock.now), 1 << 20)
    [job] = processor.on_internal_event(internal)  # type: ignore[arg-type]
    assert len(job.body["messages"]) == 3
    # the late message then finds no pending close and sends nothing more
    assert feed(records[5]) == []


def test_delivery_ids_are_stable_for_a_replayed_event_and_duplicates_are_dropped() -> None:
    processor, _, _ = make(send_on_agent_message=True)
    feed = Feed(processor)
    records = demo.seed_conversation()
    feed.all(records[:3])
    [first] = feed(records[3], offset=10)
    [replayed] = feed(records[3], offset=10)  # Kafka redelivery after a crash
    assert replayed.delivery_id == first.delivery_id
    assert feed(records[3], offset=11) == []  # the chat stack sent the same event twice


def test_each_rooms_webhooks_are_numbered_from_one_across_types() -> None:
    processor, _, _ = make(
        send_on_start=True, send_on_chat_taken=True, send_on_visitor_message=True,
        send_on_agent_message=True, send_on_close=True, send_on_offline_msg=True,
    )  # fmt: skip
    feed = Feed(processor)
    first = feed.all(demo.seed_conversation())
    other = feed.all(demo.seed_conversation(room_id="other-room"))
    assert [job.sequence for job in first] == list(range(1, len(first) + 1))
    assert [job.sequence for job in other] == list(range(1, len(other) + 1))
    assert len(first) == 7  # start, taken, 4 messages (the closing one too, 2023), close
    # Kafka redelivering a record: its jobs keep their numbers; the next job goes on.
    processor2, _, _ = make(send_on_visitor_message=True, send_on_agent_message=True)
    feed2 = Feed(processor2)
    records = demo.seed_conversation()
    feed2.all(records[:3])
    [again] = feed2(records[2], offset=feed2.offsets[records[2].topic])
    [next_one] = feed2(records[3])
    assert (again.sequence, next_one.sequence) == (1, 2)
    offline = OfflineMessageEvent(
        "off-1", "2023-02-02T10:16:07.230Z", None, "Ann", "a@b.c", "hi", None, None
    )
    assert [job.sequence for job in processor.on_offline_message(offline)] == [None]


def test_edit_replaces_and_delete_removes_from_the_transcript() -> None:
    processor, _, _ = make(send_on_close=True)
    feed = Feed(processor)
    records = demo.seed_conversation()
    feed.all(records[:6])
    edited = demo.message_event(
        ROOM, "2untSdndqBP7opGWw", "2023-02-02T10:16:09.615Z", "Hi there", True, "edit-1",
        editedAt="2023-02-02T10:17:00.000Z",
    )  # fmt: skip
    feed(edited)
    deleted = demo.InputRecord(
        Topic.MESSAGES,
        ROOM.encode(),
        {"id": "del-1", "event": "deleted", "ts": "2023-02-02T10:18:00.000Z",
         "message": {"_id": "7xjkw8ZFitMSNGmeJ", "rid": ROOM}},
    )  # fmt: skip
    feed(deleted)
    close = records[6]
    close.value["room"]["msgs"] = 3
    [job] = feed(close)
    messages = job.body["messages"]
    assert [m["_id"] for m in messages] == [
        "2untSdndqBP7opGWw", "y7p77YFfkHJeg5gD9", "ciAggDuN8ioqDrTby",
    ]  # fmt: skip
    assert messages[0]["msg"] == "Hi there"
    assert messages[0]["editedAt"] == "2023-02-02T10:17:00.000Z"


def test_lead_capture_saves_the_email_and_sends_lead_capture() -> None:
    processor, store, _ = make(send_on_lead_capture=True, send_on_close=True)
    feed = Feed(processor)
    records = demo.seed_conversation()
    feed.all(records[:2])
    lead = demo.message_event(
        ROOM,
        "lead-msg",
        "2023-02-02T10:16:30.000Z",
        "mail me at Ana.B@Example.org or 555-123-4567",
        True,
        "lead-1",
    )
    jobs = feed(lead)
    assert [job.type for job in jobs] == ["LeadCapture"]
    assert jobs[0].body["messages"] == []
    emails = jobs[0].body["visitor"]["email"]
    assert {"address": "Ana.B@Example.org"} in emails
    state = store.load(ROOM)
    assert state is not None and state.visitor is not None
    assert {"address": "Ana.B@Example.org"} in state.visitor["visitorEmails"]
    # a later room event's visitor document does not lose the captured email
    close = records[6]
    close.value["room"]["msgs"] = 1
    [session] = feed(close)
    assert {"address": "Ana.B@Example.org"} in session.body["visitor"]["email"]


def test_agent_messages_are_not_leads() -> None:
    processor, _, _ = make(send_on_lead_capture=True)
    feed = Feed(processor)
    feed.all(demo.seed_conversation()[:2])
    by_agent = demo.message_event(
        ROOM, "a1", "2023-02-02T10:16:30.000Z", "write to help@example.com", False, "a-1"
    )
    assert feed(by_agent) == []


def test_updating_a_closed_room_sends_livechat_edit_whatever_the_triggers() -> None:
    processor, _, _ = make()
    feed = Feed(processor)
    records = demo.seed_conversation()
    feed.all(records)
    updated = demo.room_event(
        ROOM, "updated", "2023-02-02T11:00:00.000Z",
        {**records[6].value["room"], "topic": "billing"}, demo.AGENT, "upd-1",
    )  # fmt: skip
    [job] = feed(updated)
    assert job.type == "LivechatEdit"
    assert job.body["topic"] == "billing"
    assert len(job.body["messages"]) == 4


def test_navigation_history_is_sent_only_when_enabled() -> None:
    visit = demo.message_event(
        ROOM, "nav-1", "2023-02-02T10:16:08.000Z", "", True, "nav-1",
        t="livechat_navigation_history",
        navigation={"page": {"change": "url", "title": "Pricing",
                             "location": {"href": "https://shop.example.com/pricing"}},
                    "token": demo.VISITOR["token"]},
    )  # fmt: skip
    for enabled in (False, True):
        processor, _, _ = make(send_on_visitor_message=True, send_on_close=True,
                               send_navigation_history=enabled)  # fmt: skip
        feed = Feed(processor)
        records = demo.seed_conversation()
        feed.all(records[:2])
        nav_jobs = feed(visit)
        assert [job.type for job in nav_jobs] == []  # never a Message, in any era
        feed.all(records[2:6])
        records[6].value["room"]["msgs"] = 5
        [close] = feed(records[6])
        ids = [m["_id"] for m in close.body["messages"]]
        assert ("nav-1" in ids) is enabled


def test_forward_carries_the_transfer() -> None:
    processor, _, _ = make(send_on_forward=True)
    feed = Feed(processor)
    feed.all(demo.seed_conversation()[:2])
    forwarded = demo.room_event(
        ROOM, "forwarded", "2023-02-02T10:20:00.000Z",
        {"_id": ROOM, "fname": "James", "ts": "2023-02-02T10:16:07.230Z", "departmentId": "dep-2",
         "servedBy": {"_id": "agent-2", "username": "user2", "ts": "2023-02-02T10:20:00.000Z"}},
        {"_id": "agent-2", "username": "user2", "name": "User Two", "emails": []}, "fwd-1",
        transfer={"oldServedBy": demo.SERVED_BY, "oldDepartmentId": None},
    )  # fmt: skip
    [job] = feed(forwarded)
    assert job.type == "LivechatSessionForwarded"
    assert job.body["oldServedBy"] == demo.SERVED_BY
    assert "oldDepartmentId" not in job.body  # a forward to an agent: oldServedBy only
    assert job.body["departmentId"] == "dep-2"


def test_due_events_go_to_the_partition_the_chat_stack_chose_for_the_room() -> None:
    # Not our key hash: the room's state lives in its records' partition's changelog.
    processor, _, clock = make(send_on_close=True, close_grace_s=30, closed_room_retention_s=60)
    feed = Feed(processor, partition=7)
    records = demo.seed_conversation()
    feed.all(records[:5])
    feed(records[6])
    clock.now += 31
    assert [(d.event, d.partition) for d in processor.due_events()] == [("omnihooks.close-due", 7)]
    clock.now += 60
    assert ("omnihooks.expire", 7) in [(d.event, d.partition) for d in processor.due_events()]


def test_closed_rooms_are_dropped_after_retention() -> None:
    processor, store, clock = make(send_on_close=True, closed_room_retention_s=600)
    Feed(processor).all(demo.seed_conversation())
    assert store.messages
    clock.now += 601
    [due] = [d for d in processor.due_events() if d.event == "omnihooks.expire"]
    internal = decode_room_event(ROOM.encode(), due.to_json(clock.now), 1 << 20)
    assert processor.on_internal_event(internal) == []  # type: ignore[arg-type]
    assert store.load(ROOM) is None
    assert not store.messages and not store.order


def test_schedule_is_rebuilt_from_the_store() -> None:
    processor, store, clock = make(send_on_close=True, close_grace_s=5)
    feed = Feed(processor)
    records = demo.seed_conversation()
    feed.all(records[:5])
    feed(records[6])
    restarted = SessionProcessor(  # a new worker
        processor.policy, store, processor.leads, clock, processor.directory
    )
    restarted.rebuild_schedule()
    clock.now += 6
    assert [d.event for d in restarted.due_events()] == ["omnihooks.close-due"]


class CountingTable(dict[bytes, bytes]):
    """A table that counts writes (each one a changelog record in the worker)."""

    writes = 0

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.writes += 1
        super().__setitem__(key, value)


def test_storing_a_message_writes_one_message_and_one_order_record() -> None:
    processor, store, _ = make()
    messages, order = CountingTable(), CountingTable()
    store._messages, store._order = messages, order  # the same store, counting its writes
    feed = Feed(processor)
    feed.all(demo.seed_conversation()[:2])
    for n in range(200):
        feed(
            demo.message_event(
                ROOM, f"m{n}", f"2023-02-02T10:17:{n % 60:02d}.000Z", "x", True, f"e{n}"
            )
        )
    # one record each, never the whole transcript
    assert (messages.writes, order.writes) == (200, 200)
    state = store.load(ROOM)
    assert state is not None and len(state.to_json()) < 4096


def test_junk_in_a_visitor_document_does_not_break_the_next_event() -> None:
    # Found by the fuzz batch through Kafka: a non-list visitorEmails crashed the merge.
    processor, _, _ = make(send_on_chat_taken=True)
    feed = Feed(processor)
    started, taken = demo.seed_conversation()[:2]
    started.value["visitor"] = {**demo.VISITOR, "visitorEmails": 1.5}
    feed(started)
    [job] = feed(taken)
    assert job.body["visitor"]["email"] == demo.VISITOR["visitorEmails"]


def test_the_schedule_is_rebuilt_from_the_rooms_that_have_one_without_decoding_the_rest() -> None:
    from topics.state import PendingClose, RoomState

    store = MemoryStore()
    open_room = RoomState(room={"_id": "open"})
    pending = RoomState(room={"_id": "pending"},
                        pending_close=PendingClose("e1", None, 3, due_at=100.0))  # fmt: skip
    closed = RoomState(room={"_id": "closed"}, closed_at=50.0)
    # A nested key of the same name must not hide the top-level one.
    tricky = RoomState(room={"_id": "tricky"}, crm_data={"closed_at": None}, closed_at=70.0)
    for room_id, state in [("open", open_room), ("pending", pending),
                           ("closed", closed), ("tricky", tricky)]:  # fmt: skip
        store.save(room_id, state)

    unscheduled = [
        room_id for room_id, raw in store.raw_rooms() if RoomState.nothing_scheduled(raw)
    ]
    assert unscheduled == ["open"]
    processor, _, _ = make()
    processor.store = store
    assert processor.rebuild_schedule() == 4
    assert processor.scheduled == 3
    assert processor._close_due == {"pending": 100.0}
    retention = processor.policy.closed_room_retention_s
    assert processor._expire_due == {"closed": 50.0 + retention, "tricky": 70.0 + retention}


def test_a_room_explains_a_live_message_once_started_and_an_agents_once_taken() -> None:
    processor, _, _ = make(send_on_close=True)
    feed = Feed(processor)
    records = demo.seed_conversation(run="live")
    room = demo.ROOM_ID
    assert not processor.explains(room, by_visitor=True)  # not started: wait for `started`
    feed(records[0])  # started
    assert processor.explains(room, by_visitor=True)
    assert not processor.explains(room, by_visitor=False)  # no agent yet: wait for `taken`
    feed(records[1])  # taken
    assert processor.explains(room, by_visitor=False)
    visitor, agent = records[2], records[3]
    assert written_by_visitor(visitor.encoded()) == ("token" in visitor.value["message"])
    assert written_by_visitor(agent.encoded()) == ("token" in agent.value["message"])
    assert written_by_visitor(b"not json")  # left to the decoder to reject, no wait

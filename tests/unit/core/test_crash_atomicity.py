"""A crash at any instant leaves a room redoable: after the records are read again (their
offsets were not committed), the room's tables and the webhooks they yield are those of a
run without the crash.

A message record writes up to three table keys (message, order entry, room state), each its
own changelog record on its own partition's batch: a crash can keep any subset of them, not
only a prefix. Every subset is tried here, for one record and for a few in a row (all read
again), with the worker's own `TableStore`; the webhooks compared are whole bodies.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from streams.core.events import decode_room_event
from streams.core.leads import compile_lead_patterns
from streams.core.sessions import DueEvent, SessionProcessor, Source
from streams.core.table_store import TableStore
from streams.dev import demo
from streams.settings import load_settings
from tests.support.sessions import processor_for
from tests.unit.core.test_sessions import Clock, Feed
from topics import codec
from topics.catalogue import Topic

ROOM = demo.ROOM_ID
Write = tuple[int, bytes, bytes | None]  # table, key, value (None: deleted)


class RecordingTable(dict[bytes, bytes]):
    """A table whose writes since `log` was set are logged, as its changelog would get them."""

    def __init__(self, index: int, log: list[Write] | None = None) -> None:
        super().__init__()
        self.index = index
        self.log = log

    def __setitem__(self, key: bytes, value: bytes) -> None:
        if self.log is not None:
            self.log.append((self.index, key, value))
        super().__setitem__(key, value)

    def pop(self, key: bytes, default: Any = None) -> Any:
        if self.log is not None:
            self.log.append((self.index, key, None))
        return super().pop(key, default)


def message(message_id: str, text: str, event_id: str, **extra: Any) -> demo.InputRecord:
    return demo.message_event(
        ROOM, message_id, "2023-02-02T10:17:00.000Z", text, True, event_id, **extra
    )


LEAD = message("lead-1", "mail me at lead@example.com", "e-lead")
SECOND = message("second-1", "and a second question", "e-second")
EDIT = message("lead-1", "edited", "e-edit", editedAt="2023-02-02T10:18:00.000Z")


def close_counting(msgs: int, event_id: str) -> demo.InputRecord:
    """The seed's close, counting `msgs` messages, produced in the millisecond of LEAD and
    SECOND (so read before them, rooms first)."""
    room = demo.seed_conversation(run="r")[6].value["room"]
    return demo.room_event(
        ROOM, "closed", "2023-02-02T10:17:00.000Z",
        {**room, "msgs": msgs, "lm": "2023-02-02T10:17:00.000Z"}, demo.AGENT, event_id,
    )  # fmt: skip


# Counts the two messages above and the seed's first one: read before them, it waits.
CLOSE = close_counting(3, "e-close")
# A forward, then two messages: read again after a crash, the forward finds the room
# counting them (and its lm moved): its body must show the transcript it showed first.
FORWARD = demo.room_event(
    ROOM, "forwarded", "2023-02-02T10:16:30.000Z",
    {"_id": ROOM, "fname": "James", "ts": "2023-02-02T10:16:07.230Z",
     "servedBy": {"_id": "agent-2", "username": "user2", "ts": "2023-02-02T10:16:30.000Z"}},
    {"_id": "agent-2", "username": "user2", "name": "User Two", "emails": []}, "e-fwd",
    transfer={"oldServedBy": demo.SERVED_BY, "oldDepartmentId": None},
)  # fmt: skip
# Counts the seed's first message and LEAD: committed before LEAD, it waits for LEAD, whose
# record sends it. A crash that kept LEAD's room state (no close pending any more) but lost
# the close's job must not lose the close.
CLOSE_AT_LEAD = close_counting(2, "e-close-at-lead")
# A forward whose room has an `lm` older than the message after it: read again, it must
# not leave the room's `lm` behind that message's.
FORWARD_LM = demo.room_event(
    ROOM, "forwarded", "2023-02-02T10:16:30.000Z",
    {**FORWARD.value["room"], "lm": "2023-02-02T10:16:30.000Z"}, FORWARD.value["agent"], "e-fwd-lm",
    transfer=FORWARD.value["transfer"],
)  # fmt: skip
LATER = message("later-1", "a later question", "e-later")
LATER.value["ts"] = LATER.value["message"]["ts"] = "2023-02-02T10:18:00.000Z"
# A forward whose visitor document brings an email after LEAD captured one.
FORWARD_EMAIL = demo.room_event(
    ROOM, "forwarded", "2023-02-02T10:18:00.000Z", FORWARD.value["room"], FORWARD.value["agent"],
    "e-fwd-email", transfer=FORWARD.value["transfer"],
    visitor={**demo.VISITOR, "visitorEmails": [{"address": "new@example.com"}]},
)  # fmt: skip
DELETE = demo.InputRecord(
    Topic.MESSAGES, ROOM.encode(),
    {"id": "e-del", "event": "deleted", "ts": "2023-02-02T10:18:00.000Z",
     "message": {"_id": "lead-1", "rid": ROOM}},
)  # fmt: skip


def processor_over(tables: list[RecordingTable]) -> SessionProcessor:
    settings = load_settings(
        webhook_url="http://crm.test/hook", send_on_visitor_message=True,
        send_on_agent_message=True, send_on_lead_capture=True, send_on_close=True,
        send_on_forward=True,
    )  # fmt: skip
    leads = compile_lead_patterns(settings.lead_email_regex, settings.lead_phone_regex)
    return processor_for(settings, TableStore(*tables), leads, Clock())


def world(
    before: list[demo.InputRecord],
) -> tuple[SessionProcessor, list[RecordingTable], dict[Topic, int]]:
    """The room after `before` (started, taken, a first message, then these); returns the
    processor, its tables and the last offset read per topic."""
    tables = [RecordingTable(n) for n in range(3)]
    processor = processor_over(tables)
    feed = Feed(processor)
    feed.all(demo.seed_conversation(run="r")[:3])
    feed.all(before)
    return processor, tables, dict(feed.offsets)


def apply(
    processor: SessionProcessor, records: list[demo.InputRecord], after: dict[Topic, int]
) -> list[Any]:
    """Apply `records`, each at the next offset of its topic after `after`; the jobs they
    made, whole, as a receiver gets them, with their webhook numbers (a redo may make a job at another of the records,
    as a close whose messages survived: with the same delivery id and body)."""
    feed, offsets, jobs = Feed(processor), dict(after), []
    for record in records:
        offsets[record.topic] = offsets.get(record.topic, -1) + 1
        jobs += [
            (job.type, job.delivery_id, job.sequence, job.body)
            for job in feed(record, offsets[record.topic])
        ]
    return sorted(jobs, key=lambda job: (job[0], job[1]))


def snapshot(tables: list[RecordingTable]) -> list[dict[bytes, Any]]:
    rooms, messages, order = tables
    return [
        {key: codec.loads(value) for key, value in rooms.items()},
        {key: codec.loads(value) for key, value in messages.items()},
        dict(order),  # message ids
    ]


def state(processor: SessionProcessor) -> tuple[int, int, list[Any]]:
    room = processor.store.load(ROOM)
    assert room is not None
    return room.next_seq, room.present, list(processor.store.transcript(ROOM, 99))


CASES = {
    "a new message": ([], [LEAD]),
    "two new messages": ([], [LEAD, SECOND]),
    "an edit": ([LEAD], [EDIT]),
    "a delete": ([LEAD], [DELETE]),
    "a delete after its edit": ([LEAD], [EDIT, DELETE]),
    # Applied first in both runs (an equal timestamp puts rooms before messages), the close
    # waits; read again after a crash, it finds the room counting messages whose own writes
    # were lost: it must wait for them again, not send a transcript without them.
    "a close before the messages it counts": ([], [CLOSE, LEAD, SECOND]),
    "a forward before two messages": ([], [FORWARD, LEAD, SECOND]),
    "a message completing a close committed before it": ([CLOSE_AT_LEAD], [LEAD]),
    "a forward with an older lm, then a message": ([], [FORWARD_LM, LATER]),
    "a forward bringing an email after a capture": ([LEAD], [FORWARD_EMAIL]),
    # Redone, the close and the forward find LEAD deleted (by a later record): their first
    # runs had it in the transcript.
    "a close, then a delete of a message it counts": ([LEAD], [CLOSE_AT_LEAD, DELETE]),
    "a forward, then a delete of an earlier message": ([LEAD], [FORWARD, DELETE]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_records_whose_writes_were_partly_lost_are_redone_to_the_same_room(case: str) -> None:
    before, records = CASES[case]
    processor, tables, offsets = world(before)
    start = [dict(table) for table in tables]
    log: list[Write] = []
    for table in tables:
        table.log = log
    expected_jobs = apply(processor, records, offsets)
    expected_tables, expected_state = snapshot(tables), state(processor)
    assert len(log) >= 2 * len(records) - 1
    failures = []
    for kept in itertools.product([False, True], repeat=len(log)):
        # What the changelogs held after the crash: the state before, plus the kept writes.
        survived = [RecordingTable(n) for n in range(3)]
        for table, content in zip(survived, start, strict=True):
            dict.update(table, content)
        for (index, key, value), keep in zip(log, kept, strict=True):
            if keep and value is None:
                dict.pop(survived[index], key, None)
            elif keep and value is not None:
                dict.__setitem__(survived[index], key, value)
        again = processor_over(survived)
        jobs = apply(again, records, offsets)  # none was committed: all are read again
        if (jobs, snapshot(survived), state(again)) != (expected_jobs, expected_tables, expected_state):  # fmt: skip
            failures.append("".join("1" if k else "0" for k in kept))
    assert not failures, f"{len(failures)} of {2 ** len(log)} crash outcomes differ: {failures[:8]}"


def test_a_close_sent_after_its_grace_is_made_again_when_its_job_was_lost() -> None:
    """The close-due event that sends a waiting close as it is: read again after a crash
    that kept the room state (the close no longer pending) and lost the job."""
    processor, tables, offsets = world([CLOSE])  # waits for LEAD and SECOND, in vain
    start = [dict(table) for table in tables]
    log: list[Write] = []
    for table in tables:
        table.log = log
    due = DueEvent(ROOM, "omnihooks.close-due", CLOSE.value["id"], 0)
    internal = decode_room_event(ROOM.encode(), due.to_json(1_700_000_000.0), 1 << 20)
    source = Source(Topic.ROOMS.value, 0, offsets[Topic.ROOMS] + 1)
    expected = processor.on_internal_event(internal, source)  # type: ignore[arg-type]
    assert [job.type for job in expected] == ["LivechatSession"]
    assert len(log) == 1  # the room state
    for keep in (False, True):
        survived = [RecordingTable(n) for n in range(3)]
        for table, content in zip(survived, start, strict=True):
            dict.update(table, content)
        if keep:
            dict.__setitem__(survived[log[0][0]], log[0][1], log[0][2])
        again = processor_over(survived).on_internal_event(internal, source)  # type: ignore[arg-type]
        assert [(job.delivery_id, job.sequence, job.body) for job in again] == [
            (job.delivery_id, job.sequence, job.body) for job in expected
        ], f"room state {'kept' if keep else 'lost'}"
        assert snapshot(survived) == snapshot(tables)

"""A crash at any instant of a record leaves its room redoable: after the record is read
again (its offset was not committed), the room's tables and the webhooks it yields are those
of a run without the crash.

A message record writes three table keys (message, order entry, room state), each its own
changelog record; the worker can die between any two, or after all three but before its
jobs reach Kafka. Each instant is tried here with the worker's own `TableStore`.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from devtools import demo
from streams.events import decode_message_event
from streams.leads import compile_lead_patterns
from streams.sessions import SessionProcessor, Source
from streams.settings import load_settings
from streams.table_store import TableStore
from tests.unit.test_sessions import Clock, Feed
from topics import codec
from topics.catalogue import Topic


class Crash(Exception):
    """The worker died here."""


class Budget:
    """How many more table writes (a set or a delete: each a changelog record) may happen."""

    def __init__(self) -> None:
        self.left: int | None = None

    def spend(self) -> None:
        if self.left is not None:
            if self.left == 0:
                raise Crash
            self.left -= 1


class CrashingTable(dict[bytes, bytes]):
    def __init__(self, budget: Budget) -> None:
        super().__init__()
        self.budget = budget

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.budget.spend()
        super().__setitem__(key, value)

    def pop(self, key: bytes, default: Any = None) -> Any:
        self.budget.spend()
        return super().pop(key, default)


ROOM = demo.ROOM_ID
LEAD = demo.message_event(
    ROOM, "lead-1", "2023-02-02T10:17:00.000Z", "mail me at lead@example.com", True, "e-lead"
)
EDIT = demo.message_event(
    ROOM, "lead-1", "2023-02-02T10:17:00.000Z", "edited", True, "e-edit",
    editedAt="2023-02-02T10:18:00.000Z",
)  # fmt: skip


def world() -> tuple[SessionProcessor, Budget, list[CrashingTable], Feed]:
    budget = Budget()
    tables = [CrashingTable(budget) for _ in range(3)]
    settings = load_settings(
        webhook_url="http://crm.test/hook", send_on_visitor_message=True,
        send_on_agent_message=True, send_on_lead_capture=True, send_on_close=True,
    )  # fmt: skip
    leads = compile_lead_patterns(settings.lead_email_regex, settings.lead_phone_regex)
    processor = SessionProcessor(settings, TableStore(*tables), leads, Clock())
    feed = Feed(processor)
    feed.all(demo.seed_conversation(run="r")[:3])  # started, taken, a first message
    return processor, budget, tables, feed


def restarted(processor: SessionProcessor) -> SessionProcessor:
    """A new worker process over the tables the old one left (rebuilt from the changelog)."""
    return SessionProcessor(processor.settings, processor.store, processor.leads, Clock())


def apply(processor: SessionProcessor, record: demo.InputRecord, offset: int) -> list[Any]:
    source = Source(Topic.MESSAGES.value, 0, offset)
    event = decode_message_event(record.key, record.encoded(), 1 << 20)
    jobs = processor.on_message_event(event, source)
    return sorted((job.type, job.delivery_id) for job in jobs)


def snapshot(tables: list[CrashingTable]) -> list[dict[bytes, Any]]:
    rooms, messages, order = tables
    return [
        {key: codec.loads(value) for key, value in rooms.items()},
        {key: codec.loads(value) for key, value in messages.items()},
        dict(order),  # message ids
    ]


def reference(record: demo.InputRecord) -> tuple[list[Any], list[dict[bytes, Any]], list[Any]]:
    processor, _, tables, feed = world()
    offset = feed.offsets[Topic.MESSAGES] + 1
    jobs = apply(processor, record, offset)
    transcript = list(processor.store.transcript(ROOM, 99))
    return jobs, snapshot(tables), transcript


@pytest.mark.parametrize("writes_before_crash", [0, 1, 2, 3])
def test_a_new_message_crashed_at_any_write_is_redone_whole(writes_before_crash: int) -> None:
    jobs, tables_after, transcript = reference(LEAD)
    assert [t for t, _ in jobs] == ["LeadCapture", "Message"]
    processor, budget, tables, feed = world()
    offset = feed.offsets[Topic.MESSAGES] + 1
    budget.left = writes_before_crash
    with contextlib.suppress(Crash):
        apply(processor, LEAD, offset)  # with 3 writes allowed it finishes...
    # ...and dies before its jobs reach Kafka: either way the record is read again.
    budget.left = None
    again = restarted(processor)
    assert apply(again, LEAD, offset) == jobs
    assert snapshot(tables) == tables_after
    assert list(again.store.transcript(ROOM, 99)) == transcript


@pytest.mark.parametrize("writes_before_crash", [0, 1, 2])
def test_an_edit_crashed_at_any_write_is_redone_as_an_edit(writes_before_crash: int) -> None:
    processor, budget, tables, feed = world()
    feed(LEAD)
    offset = feed.offsets[Topic.MESSAGES] + 1
    expected = apply(restarted(processor), EDIT, offset)
    tables_after = snapshot(tables)
    processor, budget, tables, feed = world()
    feed(LEAD)
    budget.left = writes_before_crash
    with pytest.raises(Crash):
        apply(processor, EDIT, offset)
    budget.left = None
    assert apply(restarted(processor), EDIT, offset) == expected
    assert snapshot(tables) == tables_after
    state = processor.store.load(ROOM)
    assert state is not None and (state.next_seq, state.present) == (2, 2)

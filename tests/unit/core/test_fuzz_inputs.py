"""Property-based: no input record, however broken, raises anything but InvalidEvent, and every
record that decodes is processed without an exception (the agent's promise to keep going)."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.core.events import (
    InvalidEvent,
    RoomEvent,
    decode_message_event,
    decode_offline_message,
    decode_room_event,
)
from streams.core.leads import compile_lead_patterns
from streams.core.sessions import SessionProcessor, Source
from streams.dev import demo
from streams.settings import load_settings
from tests.support.memory_store import MemoryStore
from tests.support.sessions import processor_for
from topics import codec

ROOM = demo.ROOM_ID
LIMIT = 1 << 16

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


def mutated(value: Any, data: st.DataObject, depth: int = 0) -> Any:
    """The value with some fields dropped, retyped or nulled, keeping the rest realistic."""
    if isinstance(value, dict) and depth < 4:
        out = {}
        for key, child in value.items():
            action = data.draw(st.sampled_from(["keep", "keep", "keep", "drop", "null", "junk"]))
            if action == "keep":
                out[key] = mutated(child, data, depth + 1)
            elif action == "null":
                out[key] = None
            elif action == "junk":
                out[key] = data.draw(json_values)
        return out
    return value


def processor() -> SessionProcessor:
    config = load_settings(
        webhook_url="http://crm.test/hook", send_on_start=True, send_on_close=True,
        send_on_visitor_message=True, send_on_agent_message=True, send_on_lead_capture=True,
        send_on_forward=True, send_navigation_history=True, send_on_offline_msg=True,
    )  # fmt: skip
    leads = compile_lead_patterns(config.lead_email_regex, config.lead_phone_regex)
    return processor_for(config, MemoryStore(), leads, time.time)


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(raw=st.binary(max_size=300), key=st.one_of(st.none(), st.binary(max_size=20)))
def test_raw_bytes_never_crash_a_decoder(raw: bytes, key: bytes | None) -> None:
    for decode in (
        lambda: decode_room_event(key, raw, LIMIT),
        lambda: decode_message_event(key, raw, LIMIT),
        lambda: decode_offline_message(raw, LIMIT),
    ):
        try:
            decode()
        except InvalidEvent as exc:
            assert exc.reason


@FUZZ
@given(value=json_values)
def test_any_json_never_crashes_a_decoder(value: Any) -> None:
    raw = codec.dumps(value)
    for decode in (
        lambda: decode_room_event(ROOM.encode(), raw, LIMIT),
        lambda: decode_message_event(ROOM.encode(), raw, LIMIT),
        lambda: decode_offline_message(raw, LIMIT),
    ):
        with contextlib.suppress(InvalidEvent):
            decode()


@FUZZ
@given(data=st.data())
def test_mutated_conversations_are_rejected_or_processed_never_crash(data: st.DataObject) -> None:
    sessions = processor()
    for offset, record in enumerate(demo.seed_conversation()):
        value = mutated(record.value, data)
        raw = codec.dumps(value)
        source = Source(record.topic.value, 0, offset)
        try:
            if record.topic.value == "rooms":
                event = decode_room_event(record.key, raw, LIMIT)
                if isinstance(event, RoomEvent):
                    sessions.on_room_event(event, source)
            else:
                sessions.on_message_event(decode_message_event(record.key, raw, LIMIT), source)
        except InvalidEvent:
            continue

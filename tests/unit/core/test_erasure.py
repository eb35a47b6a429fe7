"""Erasure in the session core (streams/core/erasure.py, SessionProcessor.erase): a visitor's
rooms are found through the index by id, token or any email, only in the request's
partition; their state and messages go; a marker keeps late records and answers from
bringing them back; erasing again finds nothing new; an erasure a crash cut short is
finished when read again; rooms from before the index are found too."""

from __future__ import annotations

import dataclasses

from msgspec.structs import replace

from streams.core.erasure import mentions_visitor, request_digests, visitor_digests
from streams.core.events import CrmData, InternalRoomEvent
from streams.dev import demo
from tests.unit.core.test_sessions import Feed, make
from topics.state import RoomState

EMAIL = demo.VISITOR["visitorEmails"][0]["address"]  # type: ignore[index]
TOKEN = str(demo.VISITOR["token"])


def test_a_visitors_rooms_are_erased_by_id_token_or_email_in_their_partition_only() -> None:
    for identifier in (str(demo.VISITOR["_id"]), TOKEN, EMAIL.upper()):
        processor, store, _ = make(send_on_close=True)
        Feed(processor, partition=0).all(demo.seed_conversation("room-a"))
        Feed(processor, partition=1).all(demo.seed_conversation("room-b"))
        erased = processor.erase("e1", request_digests(identifier), 1)
        assert erased.rooms == ["room-b"] and store.load("room-a").visitor  # type: ignore[union-attr]
        erased = processor.erase("e1", request_digests(identifier), 0)
        assert (erased.rooms, erased.messages) == (["room-a"], 4)  # the seed chat's four
        assert not [k for k in store.messages if k.startswith(b"room-a")]
        again = processor.erase("e2", request_digests(identifier), 0)
        assert (again.rooms, again.again) == ([], ["room-a"]), "twice: nothing newly erased"


def test_late_records_and_answers_of_an_erased_room_bring_nothing_back() -> None:
    processor, store, _ = make(send_on_close=True)
    feed = Feed(processor)
    records = demo.seed_conversation("room-a")
    feed.all(records[:3])
    processor.erase("e1", request_digests(EMAIL), 0)
    assert feed.all(records[3:]) == [], "no webhook from an erased room"
    marker = store.load("room-a")
    assert (
        marker is not None and marker.erased_at and marker.visitor is None and marker.room is None
    )
    assert not [k for k in store.messages if k.startswith(b"room-a")]
    assert processor.on_crm_data(CrmData("room-a", '{"lead": 1}', "d", "t")) is False


def test_an_erasure_a_crash_cut_short_is_finished_when_read_again() -> None:
    processor, store, _ = make(send_on_close=True)
    Feed(processor).all(demo.seed_conversation("room-a"))
    kept = dict(store.messages)
    processor.erase("e1", request_digests(TOKEN), 0)
    assert not store.messages and store.order, "the order (message ids) stays with the marker"
    store.messages.update(kept)  # the crash kept the marker and lost the messages' tombstones
    redo = processor.erase("e1", request_digests(TOKEN), 0)
    assert (redo.rooms, redo.messages) == (["room-a"], 4), "the same request: reported again"
    assert not [k for k in store.messages if k.startswith(b"room-a")]
    # and a marker's expiry drops what a crash left behind, and its index entries
    store.messages.update(kept)
    processor.clock.now += 3601  # type: ignore[attr-defined]
    processor.on_internal_event(InternalRoomEvent("x", "omnihooks.expire", "t", "room-a", None))
    assert store.load("room-a") is None and not store.messages and not store.order
    assert all(store.visitors.rooms_of(d, 0) == [] for d in visitor_digests(demo.VISITOR))


def test_rooms_from_before_the_index_and_old_addresses_are_found() -> None:
    processor, store, _ = make(send_on_close=True)
    Feed(processor).all(demo.seed_conversation("room-a")[:3])
    # as an older worker left it: no index entries, nothing marked indexed
    state = store.load("room-a")
    assert state is not None
    store.save("room-a", replace(state, indexed=[]))
    store.visitors_.clear()
    assert processor.erase("e1", request_digests(EMAIL), 0).rooms == ["room-a"]
    # an identity the visitor no longer has leaves no entry behind (a new token, say)
    processor2, _, _ = make(send_on_close=True)
    feed = Feed(processor2)
    records = demo.seed_conversation("room-b")
    feed.all(records[:1])
    moved = dict(records[1].value, visitor={**demo.VISITOR, "token": "new-token"})
    feed(dataclasses.replace(records[1], value=moved))
    assert processor2.erase("e1", request_digests(TOKEN), 0).rooms == []
    assert processor2.erase("e2", request_digests("new-token"), 0).rooms == ["room-b"]


def test_webhook_bodies_are_told_apart_by_visitor() -> None:
    body = {"visitor": {"_id": "v1", "token": "t1", "email": [{"address": "A@B.org"}]}}
    assert mentions_visitor(body, "v1") and mentions_visitor(body, "t1")
    assert mentions_visitor(body, "a@b.ORG") and not mentions_visitor(body, "other")
    offline = {"type": "LivechatOfflineMessage", "visitor": {"name": "x", "email": "c@d.org"}}
    assert mentions_visitor(offline, "C@d.org") and not mentions_visitor({}, "c@d.org")
    assert RoomState().erased_at is None

"""Erasure in the session core (streams/core/erasure.py, SessionProcessor.erase): a visitor's
rooms are found through the index by id, token or any email, only in the request's
partition; their state and messages go; a marker keeps late records and answers from
bringing them back; erasing again finds nothing; the marker's expiry drops its index."""

from __future__ import annotations

from streams.core.erasure import mentions_visitor, request_digests, visitor_digests
from streams.core.events import CrmData
from streams.dev import demo
from tests.unit.core.test_sessions import Feed, make

EMAIL = demo.VISITOR["visitorEmails"][0]["address"]  # type: ignore[index]


def test_a_visitors_rooms_are_erased_by_id_token_or_email_in_their_partition_only() -> None:
    for identifier in (demo.VISITOR["_id"], demo.VISITOR["token"], EMAIL.upper()):
        processor, store, _ = make(send_on_close=True)
        Feed(processor, partition=0).all(demo.seed_conversation("room-a"))
        Feed(processor, partition=1).all(demo.seed_conversation("room-b"))
        assert processor.erase(request_digests(str(identifier)), 2).rooms == []
        erased = processor.erase(request_digests(str(identifier)), 0)
        assert (erased.rooms, erased.messages) == (["room-a"], 4)  # the seed chat's four
        assert not [k for k in store.messages if k.startswith(b"room-a")]
        assert store.load("room-b") is not None and store.load("room-b").visitor  # type: ignore[union-attr]
        assert processor.erase(request_digests(str(identifier)), 0).rooms == [], "twice: nothing"


def test_late_records_and_answers_of_an_erased_room_bring_nothing_back() -> None:
    processor, store, _ = make(send_on_close=True)
    feed = Feed(processor)
    records = demo.seed_conversation("room-a")
    feed.all(records[:3])
    processor.erase(request_digests(EMAIL), 0)
    assert feed.all(records[3:]) == [], "no webhook from an erased room"
    marker = store.load("room-a")
    assert (
        marker is not None and marker.erased_at and marker.visitor is None and marker.room is None
    )
    assert not [k for k in store.messages if k.startswith(b"room-a")]
    assert processor.on_crm_data(CrmData("room-a", '{"lead": 1}', "d", "t")) is False


def test_the_markers_expiry_drops_it_and_its_index_entries() -> None:
    processor, store, clock = make(send_on_close=True)
    Feed(processor).all(demo.seed_conversation("room-a"))
    processor.erase(request_digests(demo.VISITOR["token"]), 0)  # type: ignore[arg-type]
    assert store.rooms_of(sorted(visitor_digests(demo.VISITOR))[0], 0) == ["room-a"]
    clock.now += 3601
    due = processor.due_events()
    assert [d.event for d in due] == ["omnihooks.expire"]
    from streams.core.events import InternalRoomEvent

    processor.on_internal_event(InternalRoomEvent("x", "omnihooks.expire", "t", "room-a", None))
    assert store.load("room-a") is None
    assert all(store.rooms_of(d, 0) == [] for d in visitor_digests(demo.VISITOR))


def test_webhook_bodies_are_told_apart_by_visitor() -> None:
    body = {"visitor": {"_id": "v1", "token": "t1", "email": [{"address": "A@B.org"}]}}
    assert mentions_visitor(body, "v1") and mentions_visitor(body, "t1")
    assert mentions_visitor(body, "a@b.ORG") and not mentions_visitor(body, "other")
    offline = {"type": "LivechatOfflineMessage", "visitor": {"name": "x", "email": "c@d.org"}}
    assert mentions_visitor(offline, "C@d.org") and not mentions_visitor({}, "c@d.org")

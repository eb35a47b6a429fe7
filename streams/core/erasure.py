"""Erasing one visitor's data: how their rooms are found without scanning every room, and
how their webhooks are told apart. Pure: no Kafka.

Each worker keeps, beside its rooms, an index from a visitor's identities (their `_id`,
their `token`, each email address) to the rooms of its partitions that visitor has. The
index keys are digests, never the identities themselves, and so is an erasure request: the
request travels on the rooms topic (kept for its retention) and must not carry the very
address it erases.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, MutableMapping
from typing import Any

from topics import codec
from topics.records import WebhookJob

JSON = dict[str, Any]
ERASE_EVENT = "omnihooks.erase"
# The notice a sessions worker sends on the jobs topic, in an erased room's place, for the
# delivery worker holding that room's jobs: its delivery-order lines go (never POSTed).
ERASE_NOTICE = "omnihooks.erase-notice"


def identity_digest(kind: str, value: str) -> str:
    if kind == "email":
        value = value.strip().lower()
    # 128 bits: no two identities of a partition meet, at half a full digest's bytes (each
    # room's state lists its own)
    return hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()[:32]


def request_digests(identifier: str) -> tuple[str, ...]:
    """What `erase --visitor X` looks for: X as an id, a token or an email address."""
    return tuple(identity_digest(kind, identifier) for kind in ("id", "token", "email"))


def visitor_digests(visitor: JSON | None) -> set[str]:
    """The digests a visitor document is found by: its id, its token, its addresses."""
    if not visitor:
        return set()
    found = set()
    for kind, name in (("id", "_id"), ("token", "token")):
        value = visitor.get(name)
        if isinstance(value, str) and value:
            found.add(identity_digest(kind, value))
    found.update(identity_digest("email", address) for address in _addresses(visitor))
    return found


class VisitorIndex:
    """A visitor's rooms by identity digest, per partition, over a table (the sessions'
    `visitor-rooms`, relay mode's `relay-visitors`): key digest, SEP, partition -> the room
    ids of that partition, as a JSON list. The partition is in the key because each
    partition's changelog holds its own rooms' entries, and a worker holding two partitions
    must not let one's list overwrite the other's."""

    SEP = "\x1f"

    def __init__(self, table: MutableMapping[bytes, bytes]) -> None:
        self._table = table

    def add(self, room_id: str, partition: int, visitor: JSON | None) -> None:
        """The room under each of the visitor's identities (written only when new: a room's
        visitor is the same most times)."""
        self.add_digests(room_id, partition, visitor_digests(visitor))

    def add_digests(self, room_id: str, partition: int, digests: Iterable[str]) -> None:
        for digest in digests:
            key = self._key(digest, partition)
            raw = self._table.get(key)
            rooms: list[str] = [] if raw is None else codec.loads(raw)
            if room_id not in rooms:
                self._table[key] = codec.dumps([*rooms, room_id])

    def rooms_of(self, digest: str, partition: int) -> list[str]:
        raw = self._table.get(self._key(digest, partition))
        return [] if raw is None else list(codec.loads(raw))

    def rooms_of_any(self, digests: Iterable[str], partition: int) -> list[str]:
        """The rooms under any of `digests` (an erasure's: the identifier as id, token and
        address), once each, in order."""
        return sorted({room for digest in digests for room in self.rooms_of(digest, partition)})

    def remove(self, digest: str, partition: int, room_id: str) -> None:
        key = self._key(digest, partition)
        raw = self._table.get(key)
        if raw is None:
            return
        rooms = [r for r in codec.loads(raw) if r != room_id]
        if rooms:
            self._table[key] = codec.dumps(rooms)
        else:
            del self._table[key]

    def complete(self, partition: int) -> bool:
        """Whether every room of the partition is indexed: rooms made before the index
        existed are indexed by the first erasure there (`SessionProcessor.erase`)."""
        return self._key(COMPLETE, partition) in self._table

    def mark_complete(self, partition: int) -> None:
        self._table[self._key(COMPLETE, partition)] = b"1"

    def _key(self, digest: str, partition: int) -> bytes:
        return f"{digest}{self.SEP}{partition}".encode()


COMPLETE = "\x00complete"  # not a digest: the partition's "every room indexed" flag


def mentions_visitor(body: JSON, identifier: str) -> bool:
    """Whether a webhook body (a Rocket.Chat body or an offline message) is the visitor's:
    the rule the index follows, on the body's visitor document."""
    visitor = body.get("visitor")
    if not isinstance(visitor, dict):
        return False
    return bool(visitor_digests(visitor) & set(request_digests(identifier)))


def _addresses(visitor: JSON) -> Iterable[str]:
    """Every email address a visitor document holds, in any of the shapes the chat stack's
    documents and the webhook bodies use."""
    for name in ("visitorEmails", "email"):
        value = visitor.get(name)
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, dict):
                item = item.get("address")
            if isinstance(item, str) and item:
                yield item


def erase_notice(erasure_id: str, room_id: str) -> WebhookJob:
    return WebhookJob(
        delivery_id=f"{erasure_id}:{room_id}", type=ERASE_NOTICE, room_id=room_id, url="",
        body={}, created_at="", event_id=erasure_id,
    )  # fmt: skip

"""Erasure through the real broker, a running worker and a real CRM: `omnihooks erase` removes
one visitor's rooms, messages, crm-data and dead letters, and once the broker has compacted
the test's topics not one of the visitor's fields is left in any compacted topic or table
changelog, while another visitor's data stays. Running it again erases nothing more; a late
record of an erased room brings nothing back; the visitor's next conversation starts clean.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
)

from streams.agents.tables import changelog_topic, tables_of
from streams.ops.topic_admin import apply_catalogue
from streams.settings import Settings
from tests.conftest import Broker
from tests.integration.test_ingest import TOKEN, Ingest
from tests.support.harness import (
    WorkerProcess,
    create_changelogs,
    omnihooks_cli,
    wait_until,
)
from tests.support.receiver import Receiver
from topics import codec
from topics.catalogue import load_catalogue
from topics.records import DeadLetter, WebhookJob

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("heavy")]

# Compact at once: segments roll after 1 s (at the next record), any dirty share is worth
# cleaning, tombstones go at the next pass.
COMPACT_NOW = {"segment.ms": "1000", "min.cleanable.dirty.ratio": "0.001",
               "delete.retention.ms": "0", "min.compaction.lag.ms": "0"}  # fmt: skip


def visitor(tag: str) -> dict[str, Any]:
    return {
        "_id": f"visitor-{tag}",
        "token": f"token-{tag}",
        "name": f"Name {tag}",
        "username": f"guest-{tag}",
        "visitorEmails": [{"address": f"{tag}@example.org"}],
    }


def conversation(
    room: str, guest: dict[str, Any], texts: list[str]
) -> list[tuple[str, dict[str, Any]]]:
    run = uuid.uuid4().hex[:8]
    head = {"_id": room, "fname": guest["name"], "ts": "2026-12-08T10:00:00.000Z",
            "v": {"_id": guest["_id"], "token": guest["token"], "username": guest["username"]}}  # fmt: skip
    records: list[tuple[str, dict[str, Any]]] = [
        ("rooms", {"id": f"{run}-s", "event": "started", "ts": "2026-12-08T10:00:00.000Z",
                   "room": head, "visitor": guest, "agent": None}),
    ]  # fmt: skip
    for n, text in enumerate(texts):
        message = {"_id": f"{room}-m{n}", "rid": room, "msg": text, "token": guest["token"],
                   "ts": f"2026-12-08T10:00:0{n + 1}.000Z",
                   "u": {"_id": guest["_id"], "username": guest["username"], "name": guest["name"]}}  # fmt: skip
        records.append(("messages", {"id": f"{run}-m{n}", "event": "message",
                                     "ts": message["ts"], "message": message}))  # fmt: skip
    closed = {**head, "msgs": len(texts), "closedAt": "2026-12-08T10:01:00.000Z"}
    records.append(("rooms", {"id": f"{run}-c", "event": "closed", "ts": "2026-12-08T10:01:00.000Z",
                              "room": closed, "visitor": guest, "agent": None}))  # fmt: skip
    return records


def produce(
    kafka: Broker, prefix: str, room: str, records: list[tuple[str, dict[str, Any]]]
) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": kafka.bootstrap, "acks": "all"})
    for topic, value in records:
        producer.produce(f"{prefix}{topic}", key=room.encode(), value=codec.dumps(value))
        producer.flush(30)  # one at a time: the conversation's order
    assert producer.flush(30) == 0


def compacted_topics(admin: AdminClient, settings: Settings) -> list[str]:
    names = [t for t in admin.list_topics(timeout=15).topics
             if t.startswith((settings.topic_prefix, settings.app_id + "-"))]  # fmt: skip
    resources = [ConfigResource(ConfigResource.Type.TOPIC, t) for t in names]
    found = admin.describe_configs(resources)
    return sorted(r.name for r, f in found.items()
                  if "compact" in f.result()["cleanup.policy"].value)  # fmt: skip


def compact_now(admin: AdminClient, topics: list[str]) -> None:
    entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
               for k, v in COMPACT_NOW.items()]  # fmt: skip
    resources = [ConfigResource(ConfigResource.Type.TOPIC, t, incremental_configs=entries)
                 for t in topics]  # fmt: skip
    for future in admin.incremental_alter_configs(resources).values():
        future.result(30)


def read_log(kafka: Broker, topic: str) -> tuple[dict[bytes, bytes], str]:
    """The topic as a table (each key's latest value; a tombstone removes it) and the text
    of every value its log still holds."""
    consumer = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": "scan",
                         "enable.auto.commit": False, "enable.partition.eof": True})  # fmt: skip
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    left, table, values = set(partitions), {}, []
    while left:
        message = consumer.poll(2.0)
        if message is None:
            continue
        if message.error():
            left.discard(message.partition())
            continue
        value = message.value()
        values.append((value or b"").decode("utf-8", "replace"))
        if value is None:
            table.pop(message.key(), None)
        else:
            table[message.key()] = value
    consumer.close()
    return table, "\n".join(values)


def holding(kafka: Broker, topics: list[str], needles: list[str]) -> dict[str, list[str]]:
    """Which of `needles` each topic's log still holds in any value."""
    found = {}
    for topic in topics:
        _, text = read_log(kafka, topic)
        hits = [needle for needle in needles if needle in text]
        if hits:
            found[topic] = hits
    return found


def test_erasing_a_visitor_leaves_none_of_their_data_in_any_compacted_topic_or_table(
    kafka: Broker,
    settings_factory: Callable[..., Settings],
    start_worker: Callable[..., WorkerProcess],
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    settings = settings_factory(
        partitions=1, webhook_url=receiver.url("/crm"), send_on_close=True,
        compat="rocketchat-7", close_grace_s=2, ingest_token=TOKEN,
    )  # fmt: skip
    prefix = settings.topic_prefix
    apply_catalogue(kafka.bootstrap, load_catalogue(1), prefix)
    create_changelogs(settings, "all")
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    wanted = {f"{prefix}crm-data"} | {
        changelog_topic(settings, "all", table) for table in tables_of("all", settings)
    }
    # topics made a moment ago reach this client's metadata a moment later
    wait_until(lambda: wanted <= set(compacted_topics(admin, settings)), 30,
               lambda: f"not all of {wanted} in {compacted_topics(admin, settings)}")  # fmt: skip
    compacted = compacted_topics(admin, settings)
    assert f"{prefix}crm-data" in compacted and f"{settings.app_id}-rooms-changelog" in compacted
    compact_now(admin, compacted)
    start_worker(settings, "all").wait_for_log("Worker ready", timeout_s=90)

    tag, other = uuid.uuid4().hex[:10], uuid.uuid4().hex[:10]
    erased, kept = visitor(tag), visitor(other)
    texts = [f"my card is {tag}-card", f"call me at {tag}-phone"]
    for room in (f"room-{tag}-1", f"room-{tag}-2"):
        produce(kafka, prefix, room, conversation(room, erased, texts))
    produce(kafka, prefix, f"room-{other}-1", conversation(f"room-{other}-1", kept, ["hello"]))
    # relay mode: the visitor's room in Rocket.Chat, whose webhook omnihooks relays
    ingest = Ingest(settings, tmp_path / "ingest.log")
    try:
        relayed = {"type": "LivechatSession", "_id": f"relay-{tag}", "visitor": {
            "_id": erased["_id"], "token": erased["token"], "name": erased["name"],
            "email": [{"address": f"{tag}@example.org"}]}, "messages": []}  # fmt: skip
        assert ingest.post("default", codec.dumps(relayed)).status_code == 200
    finally:
        ingest.stop()
    receiver.wait_for("/crm", 4, timeout_s=60)
    close = next(r.json() for r in receiver.at("/crm") if r.json()["_id"] == f"room-{tag}-1")
    # the CRM's answers are kept (crm-data) and fed back into the rooms before the erasure
    wait_until(lambda: len(read_log(kafka, f"{prefix}crm-data")[0]) == 4, 30,
               lambda: "crm-data never held the 4 answers")  # fmt: skip
    job = WebhookJob("dl-1", "LivechatSession", f"room-{tag}-1", receiver.url("/crm"), close,
                     "2026-12-08T10:02:00.000Z")  # fmt: skip
    dead = DeadLetter(job, (), "2026-12-08T10:03:00.000Z", "HTTP 500")
    produce_raw(kafka, f"{prefix}webhook-dead-letters", job.key(), dead.to_json())

    done = omnihooks_cli(settings, "erase", "--visitor", f"{tag.upper()}@Example.org")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "rooms: 2 (" in done.stdout and f"room-{tag}-1" in done.stdout, done.stdout
    assert f"relayed rooms (relay mode): 1 (relay-{tag})" in done.stdout
    assert "dead letters: 1 marked erased" in done.stdout
    assert f"{prefix}rooms: retention 7 d" in done.stdout and "gone by" in done.stdout
    again = omnihooks_cli(settings, "erase", "--visitor", erased["token"])
    assert again.returncode == 0 and "rooms: 0" in again.stdout, again.stdout
    assert "dead letters: 0 marked erased" in again.stdout
    crm_data, _ = read_log(kafka, f"{prefix}crm-data")
    assert sorted(crm_data) == [f"room-{other}-1".encode()], "the erased rooms' answers go"
    listed = omnihooks_cli(settings, "dlq", "list", "--all", "--json")
    assert listed.returncode == 0 and "dl-1" not in listed.stdout

    # A late record of an erased room (a message still on its way) brings nothing back.
    # The other visitor's next chat rolls the erased segments, and the broker compacts them:
    # then no compacted topic or changelog holds any of the erased visitor's fields or words.
    late = conversation(f"room-{tag}-1", erased, [f"late {tag}-late"])[1:2]
    produce(kafka, prefix, f"room-{tag}-1", late)
    produce(kafka, prefix, f"room-{other}-2", conversation(f"room-{other}-2", kept, ["again"]))
    receiver.wait_for("/crm", 5, timeout_s=60)
    # (The index keeps the erased rooms' ids, no field of the visitor, under digests until the
    # rooms' markers expire: an erasure a crash interrupted is then completed when read again.)
    needles = [erased["_id"], erased["token"], erased["name"], erased["username"], f"{tag}@",
               *texts, f"{tag}-late"]  # fmt: skip
    began = time.monotonic()
    wait_until(lambda: not holding(kafka, compacted, needles), 150,
               lambda: f"still held: {holding(kafka, compacted, needles)}")  # fmt: skip
    print(f"compacted {time.monotonic() - began:.1f} s after the erasure's segments rolled")
    rooms_changelog = f"{settings.app_id}-rooms-changelog"
    assert holding(kafka, [rooms_changelog], [kept["name"], kept["token"]]), "the other stays"
    rooms_table, _ = read_log(kafka, rooms_changelog)
    marker = codec.loads(rooms_table[f"room-{tag}-1".encode()])
    assert marker["erased_at"] and "visitor" not in marker and "room" not in marker, marker

    # The visitor's next conversation starts clean.
    produce(kafka, prefix, f"room-{tag}-3", conversation(f"room-{tag}-3", erased, ["new chat"]))
    receiver.wait_for("/crm", 6, timeout_s=60)
    fresh = next(r.json() for r in receiver.at("/crm") if r.json()["_id"] == f"room-{tag}-3")
    assert [m["msg"] for m in fresh["messages"]] == ["new chat"] and "crmData" not in fresh
    assert fresh["visitor"]["token"] == erased["token"]


def produce_raw(kafka: Broker, topic: str, key: bytes, value: bytes) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": kafka.bootstrap, "acks": "all"})
    producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0

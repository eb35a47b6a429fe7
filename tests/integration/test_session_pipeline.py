"""The session pipeline through the real broker: a worker process, input topics, the jobs topic."""

from __future__ import annotations

import base64
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Producer

from streams.core.events import decode_message_event, decode_room_event
from streams.core.leads import compile_lead_patterns
from streams.core.sessions import Source
from streams.dev import demo
from streams.settings import Settings
from tests.conftest import Broker
from tests.support.files import GOLDEN, SEED
from tests.support.harness import TopicReader, WorkerProcess
from tests.support.memory_store import MemoryStore
from tests.support.receiver import Receiver
from tests.support.sessions import processor_for
from topics import codec
from topics.catalogue import Topic

pytestmark = pytest.mark.integration

HOOK = "http://127.0.0.1:9/hook"  # no delivery agent runs here: jobs only


def produce(
    kafka: Broker, prefix: str, records: list[demo.InputRecord], gap_s: float = 0.3
) -> None:
    """Publish in order; the gap keeps the conversation's order across the two topics."""
    demo.produce(kafka.bootstrap, prefix, records, gap_s)


def expected_jobs(settings: Settings, records: list[demo.InputRecord]) -> list[dict[str, Any]]:
    """The same records through the pure core (proven against the seed in unit tests)."""
    leads = compile_lead_patterns(settings.lead_email_regex, settings.lead_phone_regex)
    processor = processor_for(settings, MemoryStore(), leads, time.time)
    jobs = []
    for offset, record in enumerate(records):
        source = Source(record.topic.value, 0, offset)
        if record.topic is Topic.ROOMS:
            event = decode_room_event(record.key, record.encoded(), 1 << 20)
            jobs += processor.on_room_event(event, source)  # type: ignore[arg-type]
        else:
            event = decode_message_event(record.key, record.encoded(), 1 << 20)
            jobs += processor.on_message_event(event, source)
    return [{"type": job.type, "delivery_id": job.delivery_id, "body": job.body} for job in jobs]


def test_seed_conversation_yields_the_seed_webhooks(
    kafka: Broker,
    settings_factory: Callable[..., Settings],
    applied_topics: dict[Topic, str],
    start_worker: Callable[..., WorkerProcess],
    read_topic: Callable[[str], TopicReader],
) -> None:
    settings = settings_factory(webhook_url=HOOK, send_on_close=True, send_on_agent_message=True)
    # Live first: on a backlog the two topics' records interleave in fetch order, and the
    # Message sample needs the taken event (its agent) applied before the message.
    start_worker(settings, "sessions").wait_for_log("Worker ready", timeout_s=90)
    produce(kafka, settings.topic_prefix, demo.seed_conversation(), gap_s=0.05)
    # The agent's answer, the closing comment (its own Message in the 2023 profile), the close.
    jobs = read_topic(applied_topics[Topic.WEBHOOK_JOBS]).wait_for(3, timeout_s=90)
    assert [job["type"] for job in jobs] == ["Message", "Message", "LivechatSession"]
    assert [job["sequence"] for job in jobs] == [1, 2, 3]  # sent as webhook-sequence
    # Byte-equal JSON: same fields, same values, same key order as the seed's samples.
    for job, sample in ((jobs[0], "message.json"), (jobs[2], "livechat-session.json")):
        golden = codec.dumps(codec.loads((SEED / sample).read_bytes()))
        assert codec.dumps(job["body"]) == golden
    assert jobs[1]["body"]["messages"][0]["closingMessage"] is True
    assert jobs[2]["url"] == HOOK


def full_conversation(room: str) -> list[demo.InputRecord]:
    """Every trigger once: start, queue, take, both kinds of message, a page visit, a lead,
    a forward, a close that arrives before its last message, that late message, an edit."""
    seed = demo.seed_conversation(room, run=room)
    started, taken, hi, help_, thanks, closing, closed = seed
    queued = demo.room_event(
        room, "queued", "2023-02-02T10:16:07.300Z", started.value["room"], None, f"{room}-q"
    )
    visit = demo.message_event(
        room, f"{room}-nav", "2023-02-02T10:16:08.000Z", "", True, f"{room}-nav",
        t="livechat_navigation_history",
        navigation={"page": {"change": "url", "title": "Pricing",
                             "location": {"href": "https://shop.example.com/pricing"}},
                    "token": demo.VISITOR["token"]},
    )  # fmt: skip
    lead = demo.message_event(
        room, f"{room}-lead", "2023-02-02T10:17:00.000Z", "reach me at ana@example.org", True,
        f"{room}-lead",
    )  # fmt: skip
    forwarded = demo.room_event(
        room, "forwarded", "2023-02-02T10:21:30.000Z",
        {**taken.value["room"], "departmentId": "dep-2"}, demo.AGENT, f"{room}-fwd",
        transfer={"oldServedBy": None, "oldDepartmentId": "dep-1"},
    )  # fmt: skip
    closed.value["room"]["msgs"] = 6  # nav, hi, lead, help, thanks, closing
    edit = demo.message_event(
        room, hi.value["message"]["_id"], "2023-02-02T10:16:09.615Z", "Hi (edited)", True,
        f"{room}-edit", editedAt="2023-02-02T10:30:00.000Z",
    )  # fmt: skip
    return [
        started,
        queued,
        taken,
        visit,
        hi,
        lead,
        help_,
        forwarded,
        thanks,
        closed,
        closing,
        edit,
    ]


def test_full_conversation_yields_exactly_the_expected_jobs(
    kafka: Broker,
    settings_factory: Callable[..., Settings],
    applied_topics: dict[Topic, str],
    start_worker: Callable[..., WorkerProcess],
    read_topic: Callable[[str], TopicReader],
) -> None:
    settings = settings_factory(
        webhook_url=HOOK, send_on_start=True, send_on_chat_queued=True, send_on_chat_taken=True,
        send_on_forward=True, send_on_close=True, send_on_visitor_message=True,
        send_on_agent_message=True, send_navigation_history=True, send_on_lead_capture=True,
    )  # fmt: skip
    records = full_conversation("room-full")
    expected = expected_jobs(settings, records)
    assert [job["type"] for job in expected] == [
        # the page visit sends no Message (no era does); the late closing comment does (2023)
        "LivechatSessionStart", "LivechatSessionQueued", "LivechatSessionTaken",
        "Message", "Message", "LeadCapture", "Message",
        "LivechatSessionForwarded", "Message", "Message", "LivechatSession", "Message",
    ]  # fmt: skip
    # Live before the first event: a worker that starts on a backlog reads the two topics
    # in no particular order relative to each other.
    start_worker(settings, "sessions").wait_for_log("Worker ready", timeout_s=90)
    produce(kafka, settings.topic_prefix, records)
    reader = read_topic(applied_topics[Topic.WEBHOOK_JOBS])
    reader.wait_for(len(expected), timeout_s=120)
    got = [
        {"type": job["type"], "delivery_id": job["delivery_id"], "body": job["body"]}
        for job in reader.settle()
    ]
    assert got == expected
    close = next(job for job in got if job["type"] == "LivechatSession")
    assert len(close["body"]["messages"]) == 6  # the late closing message is in
    assert close["body"]["messages"][-1]["closingMessage"] is True
    assert {"address": "ana@example.org"} in close["body"]["visitor"]["email"]


@pytest.mark.parametrize("store", ["memory", "rocksdb"])
def test_restart_mid_conversation_still_closes_with_the_whole_transcript(
    store: str,
    kafka: Broker,
    settings_factory: Callable[..., Settings],
    applied_topics: dict[Topic, str],
    start_worker: Callable[..., WorkerProcess],
    read_topic: Callable[[str], TopicReader],
) -> None:
    settings = settings_factory(
        webhook_url=HOOK,
        send_on_close=True,
        send_on_visitor_message=True,
        compat="rocketchat-7",
        store=store,
    )
    records = demo.seed_conversation()
    reader = read_topic(applied_topics[Topic.WEBHOOK_JOBS])
    first = start_worker(settings, "sessions")
    produce(kafka, settings.topic_prefix, records[:5], gap_s=0.05)
    reader.wait_for(2, timeout_s=90)  # both visitor messages went through: state is written
    first.stop(signal.SIGKILL)  # no clean shutdown: state must come back from the changelogs
    second = start_worker(settings, "sessions")
    produce(kafka, settings.topic_prefix, records[5:], gap_s=0.05)
    [close] = reader.wait_for(1, timeout_s=120, where=lambda job: job["type"] == "LivechatSession")
    golden = GOLDEN / "rocketchat-7"
    assert close["body"] == codec.loads((golden / "livechat-session.json").read_bytes())
    # The rooms it recovered were read back for the due-event schedule (the room is open).
    second.wait_for_log("due-event schedule rebuilt")
    if store == "rocksdb":  # the tables were on disk, one database per table and partition
        assert list((settings.data_dir).rglob("*.db"))
        second.wait_for_log("RocksDB holds index and filters")


def test_malformed_records_are_rejected_and_processing_continues(
    kafka: Broker,
    settings_factory: Callable[..., Settings],
    applied_topics: dict[Topic, str],
    start_worker: Callable[..., WorkerProcess],
    read_topic: Callable[[str], TopicReader],
) -> None:
    settings = settings_factory(
        webhook_url=HOOK, send_on_close=True, send_on_offline_msg=True, max_event_bytes=4096
    )
    start_worker(settings, "sessions")
    producer = Producer({"bootstrap.servers": kafka.bootstrap})
    prefix = settings.topic_prefix
    bad = [
        ("rooms", b"room-x", b"not json at all"),
        ("rooms", b"room-x", b'["a list"]'),
        ("rooms", b"room-x", b'{"id": "b1", "event": "exploded", "ts": "t", "room": {"_id": "room-x"}}'),
        ("messages", b"room-x", b'{"id": "b2", "event": "message", "ts": "t", "message": {"_id": "m"}}'),
        ("messages", b"room-x", b'{"id": "b3", "event": "message", "ts": "t", "pad": "' + b"x" * 5000 + b'"}'),
        ("offline-messages", b"ana", b'{"id": "b4", "event": "offline_message", "ts": "t"}'),
    ]  # fmt: skip
    for topic, key, value in bad:
        producer.produce(f"{prefix}{topic}", key=key, value=value)
    producer.flush(30)
    offline = {"id": "o1", "event": "offline_message", "ts": "2023-02-02T10:00:00.000Z",
               "name": "Ana", "email": "ana@example.com", "message": "Call me back",
               "department": "sales", "host": "https://shop.example.com"}  # fmt: skip
    producer.produce(f"{prefix}offline-messages", key=b"ana", value=codec.dumps(offline))
    producer.flush(30)
    produce(kafka, prefix, demo.seed_conversation(), gap_s=0.05)

    rejected = read_topic(applied_topics[Topic.REJECTED]).wait_for(len(bad), timeout_s=90)
    reasons = [record["reason"] for record in rejected]
    assert any(r.startswith("not JSON") for r in reasons)
    assert "not a JSON object but list" in reasons
    assert any("unknown event 'exploded'" in r for r in reasons)
    assert any("message.rid must be a non-empty string" in r for r in reasons)
    assert any("over the 4096-byte limit" in r for r in reasons)
    assert any("name must be a non-empty string" in r for r in reasons)
    originals = {base64.b64decode(record["value_b64"]) for record in rejected}
    assert originals == {value for _, _, value in bad}
    assert all({"topic", "partition", "offset"} <= set(record) for record in rejected)

    jobs = read_topic(applied_topics[Topic.WEBHOOK_JOBS]).wait_for(2, timeout_s=90)
    assert sorted(job["type"] for job in jobs) == ["LivechatOfflineMessage", "LivechatSession"]
    offline_job = next(job for job in jobs if job["type"] == "LivechatOfflineMessage")
    assert list(offline_job["body"]) == ["type", "sentAt", "visitor", "message"]
    assert offline_job["body"]["visitor"] == {"name": "Ana", "email": "ana@example.com"}


def test_a_ten_thousand_message_room_closes_with_its_whole_transcript(
    kafka: Broker,
    settings_factory: Callable[..., Settings],
    applied_topics: dict[Topic, str],
    start_worker: Callable[..., WorkerProcess],
    read_topic: Callable[[str], TopicReader],
    receiver: Receiver,
) -> None:
    """About 2 MB of close body: over Kafka's 1 MB default record size, which once crashed
    the sessions agent on every retry; the catalogue's topics take 16 MB. The delivery worker
    reads it whole although it fetches at most 1 MB a partition (Kafka returns a larger
    first record entire) and POSTs it."""
    settings = settings_factory(webhook_url=receiver.url("/crm"), send_on_close=True)
    room = "long-room"
    records = demo.seed_conversation(room, run=room)
    lines = [
        demo.message_event(room, f"l{i}", f"2023-02-02T1{i // 3600 % 10}:{i // 60 % 60:02d}:"
                           f"{i % 60:02d}.000Z", "a typical line of chat text", i % 2 == 0, f"l{i}")
        for i in range(10_000)
    ]  # fmt: skip
    close = records[6]
    close.value["room"]["msgs"] = 10_004
    start_worker(settings, "sessions")
    start_worker(settings, "delivery")
    demo.produce(kafka.bootstrap, settings.topic_prefix, [*records[:6], *lines, close])
    reader = read_topic(applied_topics[Topic.WEBHOOK_JOBS])
    [job] = reader.wait_for(1, timeout_s=180, where=lambda job: job["type"] == "LivechatSession")
    messages = job["body"]["messages"]
    assert len(messages) == 10_004
    lines_out = [m["_id"] for m in messages if m["_id"].startswith("l")]
    assert lines_out == [f"l{i}" for i in range(10_000)]  # in order, by their timestamps
    assert len(codec.dumps(job)) > 1024 * 1024  # over Kafka's default record limit
    [posted] = receiver.wait_for("/crm", 1, timeout_s=120)
    assert posted.json() == job["body"]

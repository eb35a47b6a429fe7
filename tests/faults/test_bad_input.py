"""Fuzzed input through the real broker: every bad record lands in `rejected` with a reason,
the good conversation around them is still processed, the worker keeps running."""

from __future__ import annotations

import base64
import random
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Producer

from streams.core.events import (
    InvalidEvent,
    decode_message_event,
    decode_offline_message,
    decode_room_event,
)
from streams.dev import demo
from streams.settings import Settings
from tests.conftest import Broker
from tests.integration.test_session_pipeline import produce
from tests.support.harness import TopicReader, WorkerProcess
from topics import codec
from topics.catalogue import Topic

pytestmark = pytest.mark.integration

JUNK: list[Any] = [None, 0, -1, 1.5, True, "", "x", [], {}, [1, "a"], {"a": None}]


def mutate(value: Any, rng: random.Random, depth: int = 0) -> Any:
    if isinstance(value, dict) and depth < 3:
        out: dict[str, Any] = {}
        for key, child in value.items():
            roll = rng.random()
            if roll < 0.08:
                continue
            out[key] = rng.choice(JUNK) if roll < 0.16 else mutate(child, rng, depth + 1)
        return out
    return value


def fuzzed_records(rng: random.Random, count: int) -> list[tuple[str, bytes | None, bytes]]:
    records: list[tuple[str, bytes | None, bytes]] = []
    offline = {"id": "o", "event": "offline_message", "ts": "t", "name": "Ana",
               "email": "ana@example.com", "message": "hi"}  # fmt: skip
    seeds = [(r.topic.value, r.key, r.value) for r in demo.seed_conversation("fuzz-room", "fz")]
    seeds.append(("offline-messages", b"ana", offline))
    for n in range(count):
        topic, key, value = rng.choice(seeds)
        kind = rng.random()
        if kind < 0.15:
            raw = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
        elif kind < 0.25:
            raw = codec.dumps(value)[: rng.randrange(1, 30)]  # cut short
        else:
            raw = codec.dumps({**mutate(value, rng), "id": f"fz-{n}"})
        if rng.random() < 0.1:
            key = rng.choice([None, b"other-room"])
        records.append((topic, key, raw))
    return records


def is_valid(topic: str, key: bytes | None, raw: bytes) -> bool:
    try:
        if topic == "rooms":
            decode_room_event(key, raw, 1 << 20)
        elif topic == "messages":
            decode_message_event(key, raw, 1 << 20)
        else:
            decode_offline_message(raw, 1 << 20)
    except InvalidEvent:
        return False
    return True


def test_fuzzed_records_are_rejected_and_good_ones_go_through(
    kafka: Broker,
    settings_factory: Callable[..., Settings],
    applied_topics: dict[Topic, str],
    start_worker: Callable[..., WorkerProcess],
    read_topic: Callable[[str], TopicReader],
    report: Callable[[str], None],
) -> None:
    settings = settings_factory(webhook_url="http://127.0.0.1:9/hook", send_on_close=True)
    worker = start_worker(settings, "sessions")
    records = fuzzed_records(random.Random(20261125), 120)
    bad = [r for r in records if not is_valid(*r)]
    assert len(bad) >= 30  # the mix really is mostly broken
    producer = Producer({"bootstrap.servers": kafka.bootstrap})
    for topic, key, raw in records:
        producer.produce(f"{settings.topic_prefix}{topic}", key=key, value=raw)
    assert producer.flush(30) == 0
    produce(kafka, settings.topic_prefix, demo.seed_conversation("good-room"), gap_s=0.02)

    rejected = read_topic(applied_topics[Topic.REJECTED]).wait_for(len(bad), timeout_s=120)
    assert all(record["reason"] for record in rejected)
    assert sorted(record["value_b64"] for record in rejected) == sorted(
        base64.b64encode(raw).decode() for _, _, raw in bad
    )
    jobs = read_topic(applied_topics[Topic.WEBHOOK_JOBS]).wait_for(
        1, timeout_s=90, where=lambda job: job["room_id"] == "good-room"
    )
    assert len(jobs[0]["body"]["messages"]) == 4
    assert worker.process is not None and worker.process.poll() is None
    assert "internal error" not in str([r["reason"] for r in rejected])
    report(f"fuzzed input: {len(records)} records, {len(bad)} rejected with reasons, 0 crashes")

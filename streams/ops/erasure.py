"""`omnihooks erase --visitor ID|TOKEN|EMAIL`: erase one visitor's data.

What can be erased is erased by whoever holds it, so the tables and their changelogs agree:
the request goes to every partition of the rooms topic, and each partition's owner (a
sessions worker) drops the visitor's rooms, their messages and index entries, tombstones
their crm-data, tells the delivery workers to drop the rooms' delivery-order lines, and
writes what it did on `erasures`. This command waits for those receipts, marks the
visitor's dead letters erased, and says what no one can erase one record at a time: the
records of delete-policy topics, until their retention ends.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streams.core.clock import iso
from streams.core.erasure import ERASE_EVENT, mentions_visitor, request_digests
from streams.engine import kafka
from streams.engine.kafka import KafkaConfig, Writer
from streams.ops.dead_letters import DeadLetterTopic
from streams.settings import Settings
from topics import codec
from topics.catalogue import Topic
from topics.records import DeadLetter, ErasureReceipt, IngestedRecord, InternalRoomRecord

# Delete-policy topics that may hold a visitor's data, each record until its retention ends.
# (`endpoint-health` and `erasures` hold none of it.)
RETAINED = (
    Topic.ROOMS, Topic.MESSAGES, Topic.OFFLINE_MESSAGES, Topic.ROCKETCHAT_WEBHOOKS,
    Topic.WEBHOOK_JOBS, Topic.WEBHOOK_RETRIES, Topic.WEBHOOK_DEAD_LETTERS, Topic.REJECTED,
)  # fmt: skip


@dataclass
class Retained:
    topic: str
    retention_ms: int
    segment_ms: int

    def gone_by(self, now: float) -> str:
        """When every record written until `now` is deleted: a segment is deleted whole once
        its newest record is past retention, and the active one rolls after segment.ms."""
        if self.retention_ms < 0:
            return "never (retention.ms=-1)"
        return iso(now + (self.retention_ms + self.segment_ms) / 1000)


Place = tuple[str, int]  # a partition of the rooms topic or of the relay topic


@dataclass
class ErasureReport:
    erasure_id: str
    expected: set[Place]
    receipts: dict[Place, ErasureReceipt] = field(default_factory=dict)
    dead_letters: int = 0
    retained: list[Retained] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.expected <= set(self.receipts)

    def rooms(self, topic: str) -> list[str]:
        return sorted(r for (t, _), receipt in self.receipts.items() if t == topic
                      for r in receipt.rooms)  # fmt: skip


def erase_visitor(settings: Settings, identifier: str, timeout_s: float) -> ErasureReport:
    config = KafkaConfig.of(settings)
    prefix = settings.topic_prefix
    erasures = f"{prefix}{Topic.ERASURES.value}"
    erasure_id = f"erase-{uuid.uuid4().hex}"
    since = kafka.end_offsets(config, erasures)
    digests, now = ",".join(request_digests(identifier)), iso(time.time())
    # the session rooms' owners, and relay mode's (whose rooms live in Rocket.Chat)
    requests = {
        Topic.ROOMS: InternalRoomRecord(
            erasure_id, ERASE_EVENT, now, erasure_id, digests
        ).to_json(),
        Topic.ROCKETCHAT_WEBHOOKS: IngestedRecord("", ERASE_EVENT, now, digests).to_json(),
    }
    writer, expected = Writer(config), set()
    for topic, request in requests.items():
        for partition in range(kafka.partition_count(config, f"{prefix}{topic.value}")):
            writer.write(f"{prefix}{topic.value}", erasure_id.encode(), request,
                         partition=partition)  # fmt: skip
            expected.add((topic.value, partition))
    writer.flush()
    report = ErasureReport(erasure_id, expected)
    report.receipts = _receipts(config, erasures, since, erasure_id, expected, timeout_s)
    report.dead_letters = erase_dead_letters(settings, identifier)
    report.retained = retained(config, [f"{prefix}{t.value}" for t in RETAINED])
    return report


def erase_dead_letters(settings: Settings, identifier: str) -> int:
    """Mark the visitor's dead letters erased; returns how many were newly marked."""
    topic = DeadLetterTopic.of(settings)
    marked = 0
    for entry in topic.entries():
        if mentions_visitor(_body(entry.letter), identifier):
            topic.erase(entry)
            marked += 1
    topic.flush()
    return marked


def _body(letter: DeadLetter) -> dict[str, Any]:
    job = letter.job
    if job.raw_body is None:
        return job.body
    try:
        found = codec.loads(job.raw_body)
    except codec.JSONDecodeError:
        return {}
    return found if isinstance(found, dict) else {}


def _receipts(
    config: KafkaConfig, topic: str, since: dict[int, int], erasure_id: str,
    expected: set[Place], timeout_s: float,
) -> dict[Place, ErasureReceipt]:  # fmt: skip
    """This erasure's receipts, one per partition asked, until all have come or `timeout_s`
    passed."""
    from confluent_kafka import TopicPartition

    consumer = kafka.reader(config)
    found: dict[Place, ErasureReceipt] = {}
    try:
        consumer.assign([TopicPartition(topic, p, offset) for p, offset in since.items()])
        deadline = time.monotonic() + timeout_s
        while not expected <= set(found) and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error() is not None:
                continue
            value = message.value()
            if value is None or message.key() != erasure_id.encode():
                continue
            receipt = ErasureReceipt.from_json(value)
            # read again after a crash: the same receipt again
            found.setdefault((receipt.topic, receipt.partition), receipt)
    finally:
        consumer.close()
    return found


def retained(config: KafkaConfig, topics: list[str]) -> list[Retained]:
    """Each delete-policy topic's retention and segment time, as the cluster has them."""
    from confluent_kafka.admin import ConfigResource  # type: ignore[attr-defined]

    admin = kafka.admin(config)
    resources = [ConfigResource(ConfigResource.Type.TOPIC, t) for t in topics]
    out = []
    for resource, future in admin.describe_configs(resources, request_timeout=30).items():
        configs = future.result(timeout=30)
        out.append(Retained(resource.name, int(configs["retention.ms"].value),
                            int(configs["segment.ms"].value)))  # fmt: skip
    return sorted(out, key=lambda r: r.topic)


def _listed(rooms: list[str]) -> str:
    if not rooms:
        return ""
    more = f" and {len(rooms) - 10} more" if len(rooms) > 10 else ""
    return f" ({', '.join(rooms[:10])}{more})"


def print_report(report: ErasureReport, identifier_shown: str, out: Callable[[str], Any]) -> None:
    out(f"erasure {report.erasure_id} of visitor {identifier_shown}")
    rooms = report.rooms(Topic.ROOMS.value)
    relayed = report.rooms(Topic.ROCKETCHAT_WEBHOOKS.value)
    messages = sum(r.messages for r in report.receipts.values())
    out("erased:")
    out(f"  rooms: {len(rooms)}{_listed(rooms)}: their state, {messages} messages and index "
        "entries, from the tables and their changelogs")  # fmt: skip
    out(f"  relayed rooms (relay mode): {len(relayed)}{_listed(relayed)}")
    out(f"  crm-data: {len(rooms) + len(relayed)} tombstones (compaction removes the answers)")
    out("  delivery-order lines: of those rooms, dropped by the delivery workers")
    out(f"  dead letters: {report.dead_letters} marked erased (never listed, shown or replayed)")
    for topic, partition in sorted(report.expected - set(report.receipts)):
        out(f"NOT DONE in partition {partition} of {topic}: no sessions worker answered in "
            "time. The request waits there and is applied when a worker reads it; run the "
            "same erase again to see it done.")  # fmt: skip
    now = time.time()
    out("cannot erase one record at a time (delete-policy topics; the visitor's records age "
        "out with them):")  # fmt: skip
    for kept in report.retained:
        out(f"  {kept.topic}: retention {kept.retention_ms / 86_400_000:g} d, segments roll "
            f"after {kept.segment_ms / 3_600_000:g} h: gone by {kept.gone_by(now)}")  # fmt: skip

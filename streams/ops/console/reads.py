"""What the console reads from Kafka and the two things it writes there.

Every read is a throwaway consumer that is assigned partitions and joins no group (the
dead-letter module's `read_from`), so the workers' offsets are never touched; the workers'
committed offsets are read through the admin API. These calls block: the server runs them
in threads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.core.endpoints import endpoint_label
from streams.engine import kafka
from streams.engine.kafka import KafkaConfig, read_all, read_from
from streams.ops.dead_letters import DeadLetterTopic, Entry
from streams.ops.endpoint_admin import EndpointsTopic, listing, write_control
from streams.settings import Settings
from topics.catalogue import Topic
from topics.records import EndpointControl, RejectedRecord, WebhookJob

# Past this many records per partition of the retries topic, the waiting count is a floor.
RETRIES_READ_CAP = 20_000


@dataclass(frozen=True)
class Rejected:
    partition: int
    offset: int
    record: RejectedRecord


@dataclass(frozen=True)
class Waiting:
    """Jobs on the retries topic that the delivery workers have not finished, by endpoint
    label: waiting for their next attempt, or held while their endpoint is open or paused."""

    by_endpoint: dict[str, int]
    at_least: bool  # a partition held more than RETRIES_READ_CAP unfinished records


@dataclass
class KafkaReads:
    settings: Settings

    def name(self, topic: Topic) -> str:
        return f"{self.settings.topic_prefix}{topic.value}"

    @property
    def connection(self) -> KafkaConfig:
        return KafkaConfig.of(self.settings)

    def dead_letter_topic(self) -> DeadLetterTopic:
        return DeadLetterTopic.of(self.settings)

    def dead_letters(self) -> list[Entry]:
        return self.dead_letter_topic().entries()

    def rejected(self, limit: int) -> list[Rejected]:
        """The latest `limit` rejected records, newest first."""
        messages = read_from(
            self.connection, self.name(Topic.REJECTED), lambda _p, low, high: high - limit
        )
        found = []
        for message in messages:
            try:
                record = RejectedRecord.from_json(message.value())
            except (ValueError, KeyError, TypeError):
                continue
            found.append(Rejected(message.partition(), message.offset(), record))
        found.sort(key=lambda r: (r.record.rejected_at, r.partition, r.offset), reverse=True)
        return found[:limit]

    def committed(self, topic: str) -> dict[int, int]:
        """Per partition, the furthest offset the delivery workers committed on `topic` (the
        `all` role's group and the `delivery` role's; a deployment runs one of them)."""
        from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition

        admin = kafka.admin(self.connection)
        app_id = self.settings.app_id
        found: dict[int, int] = {}
        for group in (app_id, f"{app_id}-delivery"):
            request = [ConsumerGroupTopicPartitions(group)]
            futures = admin.list_consumer_group_offsets(request, request_timeout=15)
            for future in futures.values():
                try:
                    result = future.result()
                except KafkaException:
                    continue  # no such group: that role is not deployed
                for tp in result.topic_partitions or []:
                    if isinstance(tp, TopicPartition) and tp.topic == topic and tp.offset >= 0:
                        found[tp.partition] = max(found.get(tp.partition, 0), tp.offset)
        return found

    def waiting_for_retry(self) -> Waiting:
        topic = self.name(Topic.WEBHOOK_RETRIES)
        committed = self.committed(topic)
        capped: set[int] = set()

        def start_at(partition: int, low: int, high: int) -> int:
            first = committed.get(partition, low)
            if high - first > RETRIES_READ_CAP:
                capped.add(partition)
                return high - RETRIES_READ_CAP
            return first

        latest: dict[str, WebhookJob] = {}
        for message in read_from(self.connection, topic, start_at):
            try:
                job = WebhookJob.from_json(message.value())
            except (ValueError, KeyError, TypeError):
                continue
            latest[job.delivery_id] = job  # a job retried again: its last record counts
        counts: dict[str, int] = {}
        for job in latest.values():
            label = endpoint_label(job.url)
            counts[label] = counts.get(label, 0) + 1
        return Waiting(counts, bool(capped))

    def endpoints(self) -> list[dict[str, Any]]:
        """The endpoints as data (and the environment's), secrets masked."""
        return listing(self.settings, EndpointsTopic(self.settings), None)

    def controls(self) -> dict[str, EndpointControl]:
        """The operators' pause/resume records, by URL."""
        found: dict[str, EndpointControl] = {}
        for message in read_all(self.connection, self.name(Topic.ENDPOINT_CONTROLS)):
            if message.value() is None:
                found.pop((message.key() or b"").decode(errors="replace"), None)
                continue
            try:
                control = EndpointControl.from_json(message.value())
            except (ValueError, KeyError, TypeError):
                continue  # not a control: the workers skip it too
            found[control.url] = control
        return found

    def write_control(self, url: str, paused: bool, reason: str) -> None:
        write_control(self.settings, url, paused, reason)

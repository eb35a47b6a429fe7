"""Typed access to the topic catalogue (`catalogue.toml`): names, partitions, retention, cleanup."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

CATALOGUE_FILE = Path(__file__).with_name("catalogue.toml")


class Topic(StrEnum):
    """The catalogue's topics by their unprefixed names."""

    ROOMS = "rooms"
    MESSAGES = "messages"
    OFFLINE_MESSAGES = "offline-messages"
    WEBHOOK_JOBS = "webhook-jobs"
    WEBHOOK_RETRIES = "webhook-retries"
    WEBHOOK_DEAD_LETTERS = "webhook-dead-letters"
    REJECTED = "rejected"
    CRM_DATA = "crm-data"
    WEBHOOK_DEAD_LETTER_MARKS = "webhook-dead-letter-marks"
    ENDPOINT_CONTROLS = "endpoint-controls"
    ENDPOINT_HEALTH = "endpoint-health"
    ERASURES = "erasures"
    ENDPOINTS = "endpoints"
    WORKSPACES = "workspaces"
    ROCKETCHAT_WEBHOOKS = "rocketchat-webhooks"


@dataclass(frozen=True)
class TopicSpec:
    """One topic as the catalogue wants it."""

    topic: Topic
    partitions: int
    replication: int
    min_insync_replicas: int
    cleanup: str
    retention_ms: int
    max_message_bytes: int
    key: str
    written_by: str
    holds: str
    copartition: str | None

    def name(self, prefix: str) -> str:
        return f"{prefix}{self.topic.value}"

    def config(self, replication: int) -> dict[str, str]:
        """Kafka topic configs, with min.insync.replicas clamped to the real replication."""
        return {
            "cleanup.policy": self.cleanup,
            "retention.ms": str(self.retention_ms),
            "min.insync.replicas": str(min(self.min_insync_replicas, replication)),
            "max.message.bytes": str(self.max_message_bytes),
        }


@dataclass(frozen=True)
class Catalogue:
    """All topics, optionally with every partition count (or replication) overridden."""

    specs: tuple[TopicSpec, ...]

    def __getitem__(self, topic: Topic) -> TopicSpec:
        for spec in self.specs:
            if spec.topic is topic:
                return spec
        raise KeyError(topic)

    def names(self, prefix: str) -> dict[Topic, str]:
        return {spec.topic: spec.name(prefix) for spec in self.specs}


def load_catalogue(
    partitions: int | None = None, replication: int | None = None, path: Path = CATALOGUE_FILE
) -> Catalogue:
    """Read the catalogue; `partitions` overrides every count so co-partitioning still holds,
    but a `single` topic's, which one owner must fold whole."""
    with open(path, "rb") as source:
        data = tomllib.load(source)
    defaults: dict[str, Any] = data["defaults"]
    specs = []
    for name, entry in data["topics"].items():
        merged = {**defaults, **entry}
        # one owner folds a `single` topic whole (the alert agent): never overridden
        fixed = bool(merged.get("single", False))
        specs.append(
            TopicSpec(
                topic=Topic(name),
                partitions=int(merged["partitions"])
                if fixed
                else partitions or int(merged["partitions"]),
                replication=replication or int(merged["replication"]),
                min_insync_replicas=int(merged["min_insync_replicas"]),
                cleanup=str(merged["cleanup"]),
                retention_ms=int(merged["retention_ms"]),
                max_message_bytes=int(merged["max_message_bytes"]),
                key=str(merged["key"]),
                written_by=str(merged["written_by"]),
                holds=str(merged["holds"]),
                copartition=merged.get("copartition"),
            )
        )
    missing = set(Topic) - {spec.topic for spec in specs}
    if missing:
        raise ValueError(f"catalogue {path} lacks {sorted(missing)}")
    _check_copartitioning(specs)
    return Catalogue(tuple(specs))


def _check_copartitioning(specs: list[TopicSpec]) -> None:
    groups: dict[str, set[int]] = {}
    for spec in specs:
        if spec.copartition:
            groups.setdefault(spec.copartition, set()).add(spec.partitions)
    for group, counts in groups.items():
        if len(counts) > 1:
            raise ValueError(f"co-partitioned group {group!r} has differing counts {counts}")

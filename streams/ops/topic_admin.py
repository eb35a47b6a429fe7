"""Create the catalogue's topics on a cluster and report drift; nothing is ever deleted."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException

# confluent-kafka re-exports these without listing them in __all__
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ConfigResource,
    NewTopic,
)

from streams.agents.tables import Role, changelog_topic, tables_of
from streams.engine import access, kafka
from streams.engine.kafka import KafkaConfig
from streams.settings import Settings
from topics.catalogue import Catalogue, TopicSpec

DEFAULT_TIMEOUT_S = 30.0


class TopicAdminError(RuntimeError):
    """The cluster refused or did not answer."""


@dataclass
class ApplyReport:
    """What `omnihooks topics apply` did and found."""

    created: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)
    replication: int = 0

    @property
    def nothing_to_do(self) -> bool:
        return not self.created and not self.drift

    def lines(self) -> list[str]:
        out = [f"created {name}" for name in self.created]
        out += [f"drift   {problem}" for problem in self.drift]
        if self.nothing_to_do:
            out.append(f"nothing to do: all {len(self.unchanged)} topics match the catalogue")
        return out


@dataclass(frozen=True)
class WantedTopic:
    """A topic as `topics apply` wants it: a catalogue topic or a table's changelog."""

    name: str
    partitions: int
    replication: int  # before clamping to the broker count
    min_insync_replicas: int
    configs: dict[str, str]

    @classmethod
    def of(cls, spec: TopicSpec, prefix: str) -> WantedTopic:
        return cls(spec.name(prefix), spec.partitions, spec.replication,
                   spec.min_insync_replicas, spec.config(spec.replication))  # fmt: skip

    def config(self, replication: int) -> dict[str, str]:
        return {**self.configs,
                "min.insync.replicas": str(min(self.min_insync_replicas, replication))}  # fmt: skip


def changelogs(
    settings: Settings, catalogue: Catalogue, roles: Sequence[Role]
) -> list[WantedTopic]:
    """The changelog topics of the roles' tables, compacted as Faust would make them."""
    wanted = []
    for role in roles:
        for table in tables_of(role, settings):
            like = catalogue[table.partitions_of]
            configs = {"cleanup.policy": "compact", **table.config}
            name = changelog_topic(settings, role, table)
            wanted.append(WantedTopic(
                name, like.partitions, like.replication, like.min_insync_replicas, configs
            ))  # fmt: skip
    return wanted


def changelogs_of_app(app: Any, replication: int = 1) -> list[WantedTopic]:
    """The changelog topics of a Faust app's tables as they are declared (for apps built in
    tests and benchmarks with tables of their own)."""
    wanted = []
    for table in app.tables.values():
        topic = table.changelog_topic
        configs = {"cleanup.policy": "compact", **(topic.config or {})}
        wanted.append(WantedTopic(topic.get_topic_name(), table.partitions, replication, 1,
                                  configs))  # fmt: skip
    return wanted


def apply_catalogue(
    config: KafkaConfig | str,
    catalogue: Catalogue,
    prefix: str,
    timeout_s: float | None = None,
    extra: Sequence[WantedTopic] = (),
) -> ApplyReport:
    """Create the catalogue's missing topics (and `extra`, the changelogs); compare
    existing ones with what is wanted. Nothing is ever deleted or changed."""
    wanted = [WantedTopic.of(spec, prefix) for spec in catalogue.specs] + list(extra)
    return apply_topics(KafkaConfig(config) if isinstance(config, str) else config, wanted,
                        timeout_s or DEFAULT_TIMEOUT_S)  # fmt: skip


def apply_topics(
    config: KafkaConfig, wanted: Sequence[WantedTopic], timeout_s: float
) -> ApplyReport:
    admin = kafka.admin(config)
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise TopicAdminError(f"cannot reach Kafka at {config.bootstrap}: {exc}") from None
    brokers = max(1, len(metadata.brokers))
    report = ApplyReport()
    to_create: list[tuple[WantedTopic, int]] = []
    existing: list[WantedTopic] = []
    for topic in wanted:
        replication = min(topic.replication, brokers)
        report.replication = replication
        if topic.name in metadata.topics:
            existing.append(topic)
        else:
            to_create.append((topic, replication))
    if to_create:
        futures = admin.create_topics(
            [NewTopic(t.name, t.partitions, replication, config=t.config(replication))
             for t, replication in to_create],
            operation_timeout=timeout_s,
        )  # fmt: skip
        by_name = {topic.name: topic for topic, _ in to_create}
        for name, future in futures.items():
            try:
                future.result()
            except KafkaException as exc:
                error = exc.args[0]
                if access.is_authorization(error):
                    raise access.authorization(config, error, "create", name) from None
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise TopicAdminError(f"creating {name} failed: {exc}") from None
                # It exists after all: another `apply` won the race, or the broker's
                # metadata had not shown it yet. Compared like any existing topic.
                existing.append(by_name[name])
                continue
            report.created.append(name)
    for topic in existing:
        found = _settled(admin, topic.name, metadata.topics.get(topic.name), timeout_s)
        problems = _drift(config, admin, topic, found, timeout_s)
        if problems:
            report.drift.extend(problems)
        else:
            report.unchanged.append(topic.name)
    return report


def _settled(admin: AdminClient, name: str, found: Any, timeout_s: float) -> Any:
    """The topic's metadata once it shows its partitions: a topic created a moment ago (by
    another apply, or this one's lost race) is listed before its partitions are, and would
    read as "0 partitions"."""
    deadline = time.monotonic() + timeout_s
    while (found is None or not found.partitions) and time.monotonic() < deadline:
        found = admin.list_topics(name, timeout=timeout_s).topics.get(name)
        if found is None or not found.partitions:
            time.sleep(0.2)
    if found is None:
        raise TopicAdminError(f"{name} exists, yet the cluster does not list it")
    return found  # partitions still none after the timeout: reported as drift, as it is


def _drift(
    config: KafkaConfig,
    admin: AdminClient,
    topic: WantedTopic,
    topic_metadata: object,
    timeout_s: float,
) -> list[str]:
    name = topic.name
    problems = []
    partitions = len(topic_metadata.partitions)  # type: ignore[attr-defined]
    if partitions != topic.partitions:
        problems.append(f"{name}: {partitions} partitions, wanted {topic.partitions}")
    resource = ConfigResource(ConfigResource.Type.TOPIC, name)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            described = admin.describe_configs([resource], request_timeout=timeout_s)
            found = described[resource].result()
            break
        except KafkaException as exc:
            error = exc.args[0]
            if access.is_authorization(error):
                raise access.authorization(config, error, "describe the configs of", name) from None
            # A topic created a moment ago (by another apply) is in the metadata before
            # every broker serves its configs.
            if error.code() != KafkaError.UNKNOWN_TOPIC_OR_PART or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    for key in ("cleanup.policy", "retention.ms", "max.message.bytes"):
        want = topic.configs.get(key)
        have = found[key].value if key in found else None
        if want is not None and have != want:
            problems.append(f"{name}: {key}={have}, wanted {want}")
    return problems

"""Create the catalogue's topics on a cluster and report drift; nothing is ever deleted."""

from __future__ import annotations

from dataclasses import dataclass, field

from confluent_kafka import KafkaException

# confluent-kafka re-exports these without listing them in __all__
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ConfigResource,
    NewTopic,
)

from streams.engine import kafka
from streams.engine.kafka import KafkaConfig
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


def apply_catalogue(
    config: KafkaConfig | str, catalogue: Catalogue, prefix: str, timeout_s: float | None = None
) -> ApplyReport:
    """Create missing topics; compare existing ones with the catalogue."""
    timeout_s = timeout_s or DEFAULT_TIMEOUT_S
    config = KafkaConfig(config) if isinstance(config, str) else config
    admin = kafka.admin(config)
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise TopicAdminError(f"cannot reach Kafka at {config.bootstrap}: {exc}") from None
    brokers = max(1, len(metadata.brokers))
    report = ApplyReport()
    to_create: list[tuple[TopicSpec, int]] = []
    existing: list[TopicSpec] = []
    for spec in catalogue.specs:
        replication = min(spec.replication, brokers)
        report.replication = replication
        if spec.name(prefix) in metadata.topics:
            existing.append(spec)
        else:
            to_create.append((spec, replication))
    if to_create:
        futures = admin.create_topics(
            [
                NewTopic(
                    spec.name(prefix), spec.partitions, replication, config=spec.config(replication)
                )
                for spec, replication in to_create
            ],
            operation_timeout=timeout_s,
        )
        for name, future in futures.items():
            try:
                future.result()
            except KafkaException as exc:
                # Another `apply` (a second pod starting) may have won the race: fine.
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise TopicAdminError(f"creating {name} failed: {exc}") from None
            report.created.append(name)
    for spec in existing:
        problems = _drift(admin, spec, prefix, metadata.topics[spec.name(prefix)], timeout_s)
        if problems:
            report.drift.extend(problems)
        else:
            report.unchanged.append(spec.name(prefix))
    return report


def _drift(
    admin: AdminClient, spec: TopicSpec, prefix: str, topic_metadata: object, timeout_s: float
) -> list[str]:
    name = spec.name(prefix)
    problems = []
    partitions = len(topic_metadata.partitions)  # type: ignore[attr-defined]
    if partitions != spec.partitions:
        problems.append(f"{name}: {partitions} partitions, catalogue says {spec.partitions}")
    resource = ConfigResource(ConfigResource.Type.TOPIC, name)
    configs = admin.describe_configs([resource], request_timeout=timeout_s)[resource].result()
    for key in ("cleanup.policy", "retention.ms", "max.message.bytes"):
        want = spec.config(1)[key]
        have = configs[key].value if key in configs else None
        if have != want:
            problems.append(f"{name}: {key}={have}, catalogue says {want}")
    return problems

"""`omnihooks acls`: each role's rights (topics/roles.toml) as Kafka ACLs, for clusters
without Strimzi's User Operator. Run by an admin principal (it needs ALTER on the cluster)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from streams.engine import access, kafka
from streams.engine.kafka import KafkaConfig
from topics.roles import Acl

ACL_TIMEOUT_S = 30.0


def bindings(principal: str, acls: Sequence[Acl]) -> list[Any]:
    # confluent-kafka re-exports these without listing them in __all__
    from confluent_kafka.admin import (  # type: ignore[attr-defined]
        AclBinding,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    kinds = {"topic": ResourceType.TOPIC, "group": ResourceType.GROUP}
    patterns = {"literal": ResourcePatternType.LITERAL, "prefix": ResourcePatternType.PREFIXED}
    operations = {
        "Read": AclOperation.READ,
        "Write": AclOperation.WRITE,
        "Create": AclOperation.CREATE,
        "Describe": AclOperation.DESCRIBE,
        "DescribeConfigs": AclOperation.DESCRIBE_CONFIGS,
    }
    return [
        AclBinding(
            kinds[acl.resource],
            acl.name,
            patterns[acl.pattern],
            principal,
            "*",
            operations[acl.operation],
            AclPermissionType.ALLOW,
        )
        for acl in acls
    ]


def grant(config: KafkaConfig, principal: str, acls: Sequence[Acl]) -> int:
    """Create the ACLs (creating one that exists is a no-op); returns how many."""
    from confluent_kafka import KafkaException

    client = kafka.admin(config)
    wanted = bindings(principal, acls)
    for binding, future in client.create_acls(wanted, request_timeout=ACL_TIMEOUT_S).items():
        try:
            future.result()
        except KafkaException as exc:
            if access.is_authorization(exc.args[0]):
                raise access.authorization(config, exc.args[0], "alter", "the ACLs") from None
            raise RuntimeError(f"granting {binding} failed: {exc}") from None
    return len(wanted)


def revoke(config: KafkaConfig, principal: str, acls: Sequence[Acl]) -> int:
    """Delete the ACLs; returns how many matched."""
    from confluent_kafka.admin import AclBindingFilter  # type: ignore[attr-defined]

    client = kafka.admin(config)
    filters = [
        AclBindingFilter(
            b.restype,
            b.name,
            b.resource_pattern_type,
            b.principal,
            b.host,
            b.operation,
            b.permission_type,
        )
        for b in bindings(principal, acls)
    ]
    deleted = 0
    for future in client.delete_acls(filters, request_timeout=ACL_TIMEOUT_S).values():
        deleted += len(future.result())
    return deleted

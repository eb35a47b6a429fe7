"""Kubernetes manifests for Strimzi, rendered from the project's own data: a `KafkaTopic` per
topic the workers use (the catalogue's and the tables' changelogs) and a `KafkaUser` per role
with exactly its rights (topics/roles.toml)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from streams.ops.topic_admin import WantedTopic
from topics.roles import Role

STRIMZI_API = "kafka.strimzi.io/v1"
Authentication = Literal["scram-sha-512", "tls"]


def strimzi_topics(wanted: Sequence[WantedTopic], cluster: str, namespace: str | None) -> str:
    """One KafkaTopic per topic, as a multi-document YAML stream."""
    documents = []
    for topic in wanted:
        lines = [
            *_header("KafkaTopic", _k8s_name(topic.name), cluster, namespace),
            "spec:",
            f"  topicName: {topic.name}",
            f"  partitions: {topic.partitions}",
            f"  replicas: {topic.replication}",
            "  config:",
            *[f'    {key}: "{value}"' for key, value in topic.config(topic.replication).items()],
        ]
        documents.append("\n".join(lines) + "\n")
    return "---\n" + "---\n".join(documents)


def strimzi_users(
    roles: Sequence[Role],
    prefix: str,
    app_id: str,
    authentication: Authentication,
    cluster: str,
    namespace: str | None,
) -> str:
    """One KafkaUser per role, named `omnihooks-<role>`, with the role's ACLs."""
    documents = []
    for role in roles:
        lines = [
            *_header("KafkaUser", f"omnihooks-{role.name}", cluster, namespace),
            "  annotations:",
            f'    omnihooks.io/runs: "{role.runs}"',
            "spec:",
            "  authentication:",
            f"    type: {authentication}",
            "  authorization:",
            "    type: simple",
            "    acls:",
        ]
        operations: dict[tuple[str, str, str], list[str]] = {}
        for acl in role.acls(prefix, app_id):
            operations.setdefault((acl.resource, acl.name, acl.pattern), []).append(acl.operation)
        for (kind, name, pattern), allowed in operations.items():
            lines += [
                "      - resource:",
                f"          type: {kind}",
                f"          name: {name}",
                f"          patternType: {pattern}",
                f"        operations: [{', '.join(allowed)}]",
            ]
        documents.append("\n".join(lines) + "\n")
    return "---\n" + "---\n".join(documents)


def _header(kind: str, name: str, cluster: str, namespace: str | None) -> list[str]:
    return [
        f"apiVersion: {STRIMZI_API}",
        f"kind: {kind}",
        "metadata:",
        f"  name: {name}",
        *([f"  namespace: {namespace}"] if namespace else []),
        "  labels:",
        f"    strimzi.io/cluster: {cluster}",
        "    app.kubernetes.io/part-of: omnihooks",
    ]


def _k8s_name(topic: str) -> str:
    # Kubernetes names are DNS subdomains: lower case, digits, '-' and '.'.
    return "".join(c if c.isalnum() or c in "-." else "-" for c in topic.lower()).strip("-.")

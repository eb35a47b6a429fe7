"""The catalogue as deployment manifests (Strimzi `KafkaTopic` resources)."""

from __future__ import annotations

from topics.catalogue import Catalogue


def strimzi_topics(catalogue: Catalogue, prefix: str, cluster: str, namespace: str | None) -> str:
    """One KafkaTopic per catalogue topic, as a multi-document YAML stream."""
    documents = []
    for spec in catalogue.specs:
        name = spec.name(prefix)
        config = spec.config(spec.replication)
        lines = [
            "apiVersion: kafka.strimzi.io/v1beta2",
            "kind: KafkaTopic",
            "metadata:",
            f"  name: {_k8s_name(name)}",
            *([f"  namespace: {namespace}"] if namespace else []),
            "  labels:",
            f"    strimzi.io/cluster: {cluster}",
            "    app.kubernetes.io/part-of: omnihooks",
            "spec:",
            f"  topicName: {name}",
            f"  partitions: {spec.partitions}",
            f"  replicas: {spec.replication}",
            "  config:",
            *[f'    {key}: "{value}"' for key, value in config.items()],
        ]
        documents.append("\n".join(lines) + "\n")
    return "---\n" + "---\n".join(documents)


def _k8s_name(topic: str) -> str:
    # Kubernetes names are DNS subdomains: lower case, digits, '-' and '.'.
    return "".join(c if c.isalnum() or c in "-." else "-" for c in topic.lower()).strip("-.")

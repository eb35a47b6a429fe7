"""Least privilege per role (`roles.toml`): each role's Kafka rights as ACL entries, for the
secured-broker tests, the Strimzi `KafkaUser` resources and the README's table."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

ROLES_FILE = Path(__file__).with_name("roles.toml")

ResourceType = Literal["topic", "group"]
PatternType = Literal["literal", "prefix"]
# Kafka's operation names, as Strimzi writes them
Operation = Literal["Read", "Write", "Create", "Describe", "DescribeConfigs"]


@dataclass(frozen=True)
class Acl:
    """One allowed operation on a resource (Kafka's ACL, Strimzi's ACL rule)."""

    resource: ResourceType
    name: str
    pattern: PatternType
    operation: Operation

    def line(self) -> str:
        star = "*" if self.pattern == "prefix" else ""
        return f"{self.operation} {self.resource} {self.name}{star}"


@dataclass(frozen=True)
class Role:
    name: str
    runs: str
    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    group: str | None = None
    changelogs: str | None = None
    readers: bool = False
    describe_groups: tuple[str, ...] = ()
    describe_configs: bool = False  # of the deployment's topics ({prefix}*)
    create: bool = False

    def acls(self, prefix: str, app_id: str) -> list[Acl]:
        """The role's rights for a deployment's topic prefix and app id."""

        def named(template: str) -> str:
            return template.format(app=app_id)

        acls = [Acl("topic", f"{prefix}{t}", "literal", "Read") for t in self.read]
        acls += [Acl("topic", f"{prefix}{t}", "literal", "Write") for t in self.write]
        if self.group is not None:
            acls.append(Acl("group", named(self.group), "literal", "Read"))
        if self.changelogs is not None:
            acls += [Acl("topic", named(self.changelogs), "prefix", op) for op in ("Read", "Write")]
        if self.readers:
            acls.append(Acl("group", f"{app_id}-reader-", "prefix", "Read"))
        acls += [Acl("group", named(g), "literal", "Describe") for g in self.describe_groups]
        if self.describe_configs:
            acls.append(Acl("topic", prefix, "prefix", "DescribeConfigs"))
        if self.create:
            for name in (prefix, f"{app_id}-"):
                acls += [
                    Acl("topic", name, "prefix", op)
                    for op in ("Create", "Describe", "DescribeConfigs")
                ]
        return acls


def load_roles(path: Path = ROLES_FILE) -> dict[str, Role]:
    with open(path, "rb") as handle:
        data: dict[str, Any] = tomllib.load(handle)
    return {
        name: Role(
            name=name,
            runs=spec["runs"],
            read=tuple(spec.get("read", ())),
            write=tuple(spec.get("write", ())),
            group=spec.get("group"),
            changelogs=spec.get("changelogs"),
            readers=bool(spec.get("readers", False)),
            describe_groups=tuple(spec.get("describe_groups", ())),
            describe_configs=bool(spec.get("describe_configs", False)),
            create=bool(spec.get("create", False)),
        )
        for name, spec in data["roles"].items()
    }

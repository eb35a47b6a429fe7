"""The Faust tables of each worker role, in one list: the agents make them, and
`omnihooks topics apply` creates their changelog topics beforehand, so a worker never needs
the right to create a topic (least privilege: topics/roles.toml)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from streams.settings import Settings
from topics.catalogue import Topic

Role = Literal["all", "sessions", "delivery"]
ROLES: tuple[Role, ...] = ("all", "sessions", "delivery")


@dataclass(frozen=True)
class TableSpec:
    """One table: its name, the input it is co-partitioned with, and its changelog's
    configs beyond compaction."""

    name: str
    partitions_of: Topic
    help: str
    config: dict[str, str] = field(default_factory=dict)


SESSION_TABLES = (  # in TableStore's order
    TableSpec("rooms", Topic.ROOMS, "room, visitor, agent, crmData and counters"),
    TableSpec("messages", Topic.ROOMS, "transcript messages by room and message id"),
    TableSpec("message-order", Topic.ROOMS, "message ids by room and arrival sequence"),
    TableSpec("visitor-rooms", Topic.ROOMS, "room ids by visitor identity digest, for erasure"),
)


def settled_jobs(settings: Settings) -> TableSpec | None:
    """Each job's outcome for a while, so a job read twice is POSTed once; off at 0."""
    if settings.settled_retention_s <= 0:
        return None
    retention_ms = str(int(settings.settled_retention_s * 1000))
    return TableSpec(
        "settled-jobs", Topic.WEBHOOK_JOBS,
        "outcome per delivery id, so a job read twice is POSTed once",
        {"cleanup.policy": "compact,delete", "retention.ms": retention_ms},
    )  # fmt: skip


def delivery_order(settings: Settings) -> TableSpec | None:
    if settings.delivery_order != "room":
        return None
    return TableSpec(
        "delivery-order", Topic.WEBHOOK_JOBS,
        "per room and endpoint, the webhook numbers of jobs waiting in the retries topic",
        {"cleanup.policy": "compact"},
    )  # fmt: skip


# Relay mode's rooms live in Rocket.Chat; what omnihooks keeps of them is their crm-data.
RELAY_VISITORS = TableSpec(
    "relay-visitors", Topic.ROCKETCHAT_WEBHOOKS,
    "relayed room ids by visitor identity digest, for erasure",
)  # fmt: skip

ENDPOINT_ALERTS = TableSpec(
    "endpoint-alerts", Topic.ENDPOINT_HEALTH,
    "each endpoint URL's health cluster-wide, so each transition is alerted once",
    {"cleanup.policy": "compact"},
)  # fmt: skip


def tables_of(role: Role, settings: Settings) -> list[TableSpec]:
    tables: list[TableSpec] = []
    if role in ("all", "sessions"):
        tables += [*SESSION_TABLES, RELAY_VISITORS]
    if role in ("all", "delivery"):
        tables += [t for t in (settled_jobs(settings), delivery_order(settings)) if t]
        tables.append(ENDPOINT_ALERTS)
    return tables


def role_app_id(settings: Settings, role: Role) -> str:
    """The Faust app id (and consumer group) of a role: each role is its own group."""
    return settings.app_id if role == "all" else f"{settings.app_id}-{role}"


def changelog_topic(settings: Settings, role: Role, table: TableSpec) -> str:
    """Faust's name for a table's changelog topic."""
    return f"{role_app_id(settings, role)}-{table.name}-changelog"

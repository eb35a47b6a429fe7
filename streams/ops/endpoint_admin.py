"""`omnihooks endpoints add | list | show | update | disable | enable | remove |
rotate-secret`: the operators' side of the `endpoints` topic (streams/core/endpoints.py).

Each command reads the topic whole (it is small: one record per endpoint once compacted),
checks what it is asked against it, and writes one record (a tombstone for `remove`).
Secrets are shown masked; a secret the command generates is printed once, when made.
"""

from __future__ import annotations

import secrets as random_secrets
import time
from dataclasses import dataclass
from typing import Any

import msgspec
from msgspec.structs import replace

from streams.core.clock import iso
from streams.core.endpoints import (
    EndpointError,
    mask,
    rotate,
    signing_secrets,
    validate,
)
from streams.engine.kafka import KafkaConfig, read_all, write_one
from streams.settings import Settings
from topics import codec
from topics.catalogue import Topic
from topics.records import (
    DEFAULT_WORKSPACE,
    EndpointControl,
    EndpointRecord,
    WorkspaceRecord,
    endpoint_key,
)


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 24 random bytes in base64."""
    import base64

    return "whsec_" + base64.b64encode(random_secrets.token_bytes(24)).decode()


def write_control(settings: Settings, url: str, paused: bool, reason: str) -> str:
    """Pause or resume an endpoint URL on every delivery worker (an `endpoint-controls`
    record, acknowledged); returns the topic written."""
    topic = f"{settings.topic_prefix}{Topic.ENDPOINT_CONTROLS.value}"
    record = EndpointControl(url, paused, iso(time.time()), reason)
    write_one(KafkaConfig.of(settings), topic, url.encode(), record.to_json())
    return topic


@dataclass
class EndpointsTopic:
    settings: Settings

    @property
    def name(self) -> str:
        return f"{self.settings.topic_prefix}{Topic.ENDPOINTS.value}"

    def records(self) -> dict[bytes, EndpointRecord]:
        """Every endpoint now on the topic, by key."""
        found: dict[bytes, EndpointRecord] = {}
        for message in read_all(KafkaConfig.of(self.settings), self.name):
            if message.value() is None:
                found.pop(message.key(), None)
            else:
                record = EndpointRecord.from_json(message.value())
                found[record.key()] = record
        return found

    def find(self, workspace: str, endpoint_id: str) -> EndpointRecord:
        record = self.records().get(endpoint_key(workspace, endpoint_id))
        if record is None:
            raise EndpointError(f"no endpoint {workspace}/{endpoint_id}")
        return record

    def named(self, ref: str) -> EndpointRecord:
        """The endpoint `WORKSPACE/ID` (or `ID` in `default`) names: its record on the topic,
        else the environment's endpoint when that is the one named; EndpointError if none."""
        workspace, _, endpoint_id = ref.rpartition("/")
        workspace = workspace or DEFAULT_WORKSPACE
        try:
            return self.find(workspace, endpoint_id)
        except EndpointError:
            env = self.settings.default_endpoint()
            if env is None or env.key() != endpoint_key(workspace, endpoint_id):
                raise
            return env

    def write(self, key: bytes, value: bytes | None) -> None:
        write_one(KafkaConfig.of(self.settings), self.name, key, value)

    def put(self, record: EndpointRecord) -> EndpointRecord:
        record = validate(record)
        self.write(record.key(), record.to_json())
        self.count_workspace(record.workspace)
        return record

    def remove(self, record: EndpointRecord) -> None:
        self.write(record.key(), None)
        self.count_workspace(record.workspace)

    def count_workspace(self, workspace: str) -> None:
        """The workspace's entry on `workspaces` as the endpoints topic now has it: its
        count of endpoints, or a tombstone once it has none (relay then answers 404)."""
        count = sum(1 for r in self.records().values() if r.workspace == workspace)
        topic = f"{self.settings.topic_prefix}{Topic.WORKSPACES.value}"
        value = WorkspaceRecord(workspace, count, iso(time.time())).to_json() if count else None
        write_one(KafkaConfig.of(self.settings), topic, workspace.encode(), value)


def now_iso() -> str:
    return iso(time.time())


def shown(record: EndpointRecord, source: str = "topic") -> dict[str, Any]:
    """The endpoint as `list --json` and `show` print it: secrets and token masked."""
    now = time.time()
    data: dict[str, Any] = msgspec.to_builtins(record)
    data["token"] = mask(record.token)
    data["secrets"] = [
        {
            **msgspec.to_builtins(s),
            "secret": mask(s.secret),
            "signing": s.secret in signing_secrets(record, now),
        }
        for s in record.secrets
    ]
    data["headers"] = {name: mask(value) for name, value in record.headers.items()}
    data["basic_auth"] = mask(record.basic_auth)
    if record.oauth2 is not None:
        data["oauth2"]["client_secret"] = mask(record.oauth2.client_secret)
    if record.tls is not None:
        data["tls"] = {"certificate": "set" if record.tls.certificate else "",
                       "key": "set" if record.tls.key else "",
                       "ca": "set" if record.tls.ca else ""}  # fmt: skip
    data["source"] = source
    return data


def check_expressions(settings: Settings, record: EndpointRecord) -> None:
    """The endpoint's filter and template compile and run on every sample webhook of its
    era (streams/ops/samples.py); EndpointError with libjq's reason and position if not."""
    from streams.core.expressions import ExpressionError, check
    from streams.ops.samples import sample_webhooks

    if not record.filter and not record.template:
        return
    samples = list(sample_webhooks(settings, record).values())
    for kind, program in (("filter", record.filter), ("template", record.template)):
        if program:
            try:
                check(program, samples, kind)
            except ExpressionError as exc:
                raise EndpointError(f"{kind} {exc}") from None


def listing(
    settings: Settings, topic: EndpointsTopic, workspace: str | None
) -> list[dict[str, Any]]:
    """Every endpoint (the environment's too, unless a record replaces it), masked."""
    records = topic.records()
    rows = [shown(r) for r in records.values()]
    env = settings.default_endpoint()
    if env is not None and env.key() not in records:
        rows.append(shown(env, source="environment"))
    if workspace is not None:
        rows = [row for row in rows if row["workspace"] == workspace]
    return sorted(rows, key=lambda row: (row["workspace"], row["id"]))


def table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'workspace/id':<28} {'state':<8} {'url':<44} triggers"]
    for row in rows:
        state = "enabled" if row["enabled"] else "disabled"
        name = f"{row['workspace']}/{row['id']}"
        lines.append(f"{name:<28} {state:<8} {row['url']:<44} {','.join(row['triggers']) or '-'}")
    return "\n".join(lines)


def print_json(data: Any) -> None:
    print(codec.dumps(data).decode())


def changed(record: EndpointRecord, **changes: Any) -> EndpointRecord:
    """The record with the given fields (None: left as is) and a new update time."""
    kept = {name: value for name, value in changes.items() if value is not None}
    return replace(record, **kept, updated_at=now_iso())


def validate_fields(workspace: str, endpoint_id: str, fields: dict[str, Any]) -> None:
    """Check the given fields as an endpoint would hold them (EndpointError if not)."""
    now = now_iso()
    given = {name: value for name, value in fields.items() if value is not None}
    validate(EndpointRecord(workspace, endpoint_id, **{"url": "http://x.invalid", **given},
                            created_at=now, updated_at=now))  # fmt: skip


def rotated(
    record: EndpointRecord, secret: str | None, grace_s: float
) -> tuple[EndpointRecord, str]:
    secret = secret or new_secret()
    now = time.time()
    return rotate(record, secret, iso(now), iso(now + grace_s)), secret

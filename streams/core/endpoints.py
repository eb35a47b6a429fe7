"""Endpoints as data: the CRMs (or any receivers) of each workspace, and which webhooks each
wants.

Operators keep them on the compacted `endpoints` topic (`omnihooks endpoints add|update|...`);
every worker follows it whole, so a change reaches all of them within seconds and a restart
reads it again. The environment settings (`OMNIHOOKS_WEBHOOK_URL`, `OMNIHOOKS_SEND_ON_*`,
the token and signing secret) stay the endpoint `default` of the workspace `default`, so a
single-CRM deployment works as before; a record keyed `default/default` replaces it.

Pure: no Kafka, no HTTP. `EndpointDirectory.apply` takes the topic's records.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

from msgspec.structs import replace

from streams.core.clock import parse_iso
from streams.core.compat import PROFILES, CompatName, Profile, profile_named
from streams.core.expressions import ExpressionError, compiled, matches
from streams.core.signing import signing_key
from topics.records import (
    DEFAULT_ENDPOINT,
    DEFAULT_WORKSPACE,
    EndpointRecord,
    SigningSecret,
    endpoint_key,
)

# Rocket.Chat's CRM triggers (Livechat_webhook_on_*, `OMNIHOOKS_SEND_ON_*`), by the setting's
# suffix: what `--triggers` takes.
TRIGGERS = (
    "start",
    "chat_queued",
    "chat_taken",
    "forward",
    "close",
    "visitor_message",
    "agent_message",
    "lead_capture",
    "offline_msg",
)
log = logging.getLogger(__name__)
# Webhooks an endpoint's filter failed on (counted as no match), by endpoint `workspace/id`:
# exported as omnihooks_filter_errors_total by the worker.
FILTER_ERRORS: Counter[str] = Counter()
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an RFC 9110 token

# What an alert endpoint takes: "" (none: a CRM), "all" (every workspace's alerts, the global
# one), "workspace" (its own workspace's).
ALERT_SCOPES = ("", "all", "workspace")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def endpoint_label(url: str) -> str:
    """The URL as a metrics label: scheme, host and path only, since a query string or
    user info may hold a CRM's credentials."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.port is not None:  # raises for a port that is not a number in range
            host = f"{host}:{parts.port}"
    except ValueError:
        return "(invalid URL)"  # the POST says why, once, as a dead letter
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class EndpointError(ValueError):
    """An endpoint that cannot be: the reason, for the operator."""


def validate(endpoint: EndpointRecord) -> EndpointRecord:
    """The endpoint if it can be; else EndpointError saying why."""
    for what, name in (("workspace", endpoint.workspace), ("endpoint id", endpoint.id)):
        if not NAME.match(name):
            raise EndpointError(
                f"{what} {name!r}: 1 to 64 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
    parts = urlsplit(endpoint.url)
    try:
        _ = parts.port  # a port that is not a number in range raises
    except ValueError:
        raise EndpointError(f"URL {endpoint.url!r}: its port is not a port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EndpointError(f"URL {endpoint.url!r}: an http:// or https:// URL with a host")
    for secret in endpoint.secrets:
        try:
            signing_key(secret.secret)
        except ValueError:  # binascii.Error: a whsec_ secret that is not base64
            raise EndpointError("a whsec_ secret must be base64 after the prefix") from None
    unknown = sorted(set(endpoint.triggers) - set(TRIGGERS))
    if unknown:
        raise EndpointError(
            f"unknown trigger(s) {', '.join(unknown)}; known: {', '.join(TRIGGERS)}"
        )
    if endpoint.compat is not None and endpoint.compat not in PROFILES:
        raise EndpointError(f"compat {endpoint.compat!r}: one of {', '.join(PROFILES)}")
    for name, value in (("retry attempts", endpoint.retry_attempts),
                        ("timeout (ms)", endpoint.timeout_ms),
                        ("concurrency", endpoint.concurrency)):  # fmt: skip
        if value is not None and value < (0 if name == "retry attempts" else 1):
            raise EndpointError(f"{name} {value}: too small")
    delay = endpoint.retry_delay_s
    if delay is not None and not (math.isfinite(delay) and delay >= 0):
        raise EndpointError(f"retry delay {delay}: a number of seconds, 0 or more")
    for kind, program in (("filter", endpoint.filter), ("template", endpoint.template)):
        if program:
            try:
                compiled(program)
            except ExpressionError as exc:
                raise EndpointError(f"{kind} {exc}") from None
    for header, text in endpoint.headers.items():
        if not HEADER_NAME.match(header) or any(c in text for c in "\r\n\0"):
            raise EndpointError(f"header {header!r}: a header name, and a value on one line")
    if endpoint.basic_auth and ":" not in endpoint.basic_auth:
        raise EndpointError("basic auth: user:password")
    oauth2 = endpoint.oauth2
    if oauth2 is not None:
        if urlsplit(oauth2.token_url).scheme not in ("http", "https"):
            raise EndpointError(f"OAuth2 token URL {oauth2.token_url!r}: an http(s) URL")
        if not oauth2.client_id or not oauth2.client_secret:
            raise EndpointError("OAuth2 needs a client id and a client secret")
    if endpoint.alerts not in ALERT_SCOPES:
        raise EndpointError(f"alerts {endpoint.alerts!r}: one of {', '.join(ALERT_SCOPES[1:])}")
    tls = endpoint.tls
    if tls is not None and bool(tls.certificate) != bool(tls.key):
        raise EndpointError("a client certificate needs its key, and a key its certificate")
    return replace(endpoint, triggers=tuple(t for t in TRIGGERS if t in endpoint.triggers))


def signing_secrets(endpoint: EndpointRecord, now: float) -> list[str]:
    """The secrets that sign now: the newest, and older ones within their grace period."""
    return [
        s.secret for s in endpoint.secrets if s.expires_at is None or parse_iso(s.expires_at) > now
    ]


def rotate(endpoint: EndpointRecord, secret: str, now_iso: str, grace_ends: str) -> EndpointRecord:
    """The endpoint signing with `secret` first; its current secrets keep signing until
    `grace_ends` (those already expiring keep their own end), then only the new one."""
    now = parse_iso(now_iso)
    kept = tuple(
        s if s.expires_at is not None else replace(s, expires_at=grace_ends)
        for s in endpoint.secrets
        if s.expires_at is None or parse_iso(s.expires_at) > now  # the expired go for good
    )
    return replace(endpoint, secrets=(SigningSecret(secret, now_iso), *kept), updated_at=now_iso)


def mask(secret: str) -> str:
    """Enough to tell two secrets apart, not enough to use one."""
    if not secret:
        return ""
    return f"…{secret[-4:]}" if len(secret) >= 12 else "…"


class EndpointDirectory:
    """Every workspace's endpoints, as the `endpoints` topic says, over the environment's."""

    def __init__(self, default: EndpointRecord | None, compat: CompatName) -> None:
        # The environment's endpoint (OMNIHOOKS_WEBHOOK_URL and friends), under any the
        # `endpoints` topic names the same; and the era of endpoints that name none.
        self._env = default
        self._compat = compat
        self._records: dict[bytes, EndpointRecord] = {}
        self._enabled: dict[str, list[EndpointRecord]] = {}
        self._rebuild()

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """One record of the `endpoints` topic: an endpoint as it is now, or its tombstone."""
        if value is None:
            if key is not None and self._records.pop(key, None) is not None:
                log.info("endpoint %s removed", key.decode())
        else:
            record = EndpointRecord.from_json(value)
            if self._records.get(record.key()) != record:
                log.info("endpoint %s/%s %s: %s", record.workspace, record.id,
                         "enabled" if record.enabled else "disabled",
                         endpoint_label(record.url))  # fmt: skip
            self._records[record.key()] = record
        self._rebuild()

    def _rebuild(self) -> None:
        enabled: dict[str, list[EndpointRecord]] = {}
        alerting: list[EndpointRecord] = []
        for record in self.all():
            if record.enabled and record.alerts:
                alerting.append(record)
            elif record.enabled:
                enabled.setdefault(record.workspace, []).append(record)
        self._enabled, self._alerting = enabled, alerting

    def all(self) -> list[EndpointRecord]:
        """Every endpoint (disabled ones too), the environment's first when it stands."""
        records = dict(self._records)
        if self._env is not None:
            records.setdefault(self._env.key(), self._env)
        return sorted(records.values(), key=lambda r: (r.workspace, r.id))

    def enabled(self, workspace: str | None) -> list[EndpointRecord]:
        return self._enabled.get(workspace or DEFAULT_WORKSPACE, [])

    def alert_receivers(self, workspaces: set[str]) -> list[EndpointRecord]:
        """The enabled alert endpoints for alerts about these workspaces' endpoints: every
        global one ("all") and each workspace's own ("workspace")."""
        return [e for e in self._alerting if e.alerts == "all" or e.workspace in workspaces]

    def at_url(self, url: str) -> list[EndpointRecord]:
        """The endpoints (enabled or not) that POST to `url`: what a breaker or a pause,
        both kept per URL, is about."""
        return [e for e in self.all() if e.url == url]

    def wanting(self, workspace: str | None, trigger: str) -> list[EndpointRecord]:
        """The workspace's enabled endpoints whose triggers include `trigger`."""
        return [e for e in self.enabled(workspace) if trigger in e.triggers]

    def find(self, workspace: str | None, endpoint_id: str | None) -> EndpointRecord | None:
        """The endpoint a job names, enabled or not; None once removed."""
        workspace = workspace or DEFAULT_WORKSPACE
        endpoint_id = endpoint_id or DEFAULT_ENDPOINT
        key = endpoint_key(workspace, endpoint_id)
        record = self._records.get(key)
        if record is None and self._env is not None and key == self._env.key():
            return self._env
        return record

    def profile(self, endpoint: EndpointRecord) -> Profile:
        return profile_named(endpoint.compat or self._compat)

    @staticmethod
    def passes(endpoint: EndpointRecord, body: bytes, delivery_id: str) -> bool:
        """Whether the endpoint's filter lets this webhook through (no filter: yes). A
        filter that fails on it says no, logged with the delivery id and counted: a bad
        expression must not stop the room's other webhooks."""
        if not endpoint.filter:
            return True
        try:
            return matches(endpoint.filter, body)
        except ExpressionError as exc:
            name = f"{endpoint.workspace}/{endpoint.id}"
            FILTER_ERRORS[name] += 1
            log.warning("endpoint %s: webhook %s not sent, its %s", name, delivery_id, exc)
            return False


def endpoints_named(records: Iterable[EndpointRecord]) -> dict[str, EndpointRecord]:
    """By `workspace/id`, as the CLI names them."""
    return {record.key().decode(): record for record in records}

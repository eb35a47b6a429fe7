"""Alerts about endpoints, once per transition cluster-wide: a pure fold of health facts.

Breakers are per worker (streams/core/breaker.py): with three workers an endpoint that goes
down opens three breakers, and recovers as three probes succeed. Each worker writes its
transitions, its dead letters and a heartbeat to the single-partition `endpoint-health`
topic; one alert agent (whoever owns that partition) folds them here, in a table whose
changelog survives it, into the cluster's view:

- an endpoint is **open** while any live worker's breaker holds it open: the first worker to
  open it raises `endpoint_opened`, the last to close it `endpoint_closed`;
- a worker that stops heartbeating (killed, partitioned) no longer holds anything open: its
  claims age out after `claim_ttl_s`, and the last one going closes the endpoint;
- `endpoint_paused` and `endpoint_resumed` follow the operators' controls, once per change;
- `dead_letters` goes out when `dead_letters` jobs of the endpoint were dead-lettered
  within `window_s`, and again only once the count fell below and rose again.

A fact older than `stale_s` when it is folded (a worker's backlog, a first deploy reading
old controls) changes the state but raises nothing: an alert an hour late is noise.

Pure: no Kafka, no clock (every time is the facts' own).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from msgspec.structs import replace

from streams.core.clock import iso
from streams.core.endpoints import EndpointDirectory, endpoint_label
from topics.records import DEFAULT_WORKSPACE, EndpointRecord, HealthEvent, WebhookJob
from topics.state import EndpointAlertState

ALERT_TYPE = "omnihooks.alert"  # the alert jobs' type, beside the webhooks' own

OPENED, CLOSED = "endpoint_opened", "endpoint_closed"
PAUSED, RESUMED = "endpoint_paused", "endpoint_resumed"
DEAD_LETTERS = "dead_letters"
ALERT_KINDS = (OPENED, CLOSED, PAUSED, RESUMED, DEAD_LETTERS)

# A ready-made body for Slack-compatible incoming webhooks (Slack, Mattermost, Rocket.Chat's
# own incoming integrations all take `text`): the template `--alert-format slack` sets.
SLACK_TEMPLATE = '{body: {text: .text, username: "omnihooks"}}'


@dataclass(frozen=True)
class AlertPolicy:
    dead_letters: int = 10
    window_s: float = 600.0
    claim_ttl_s: float = 90.0  # three heartbeats
    stale_s: float = 3600.0


@dataclass(frozen=True)
class Alert:
    """One alert, as the JSON event an alert endpoint receives (`body`)."""

    kind: str
    url: str
    workspace: str | None
    endpoint_id: str | None
    at: float
    reason: str = ""
    count: int = 0  # dead letters within the window

    @property
    def id(self) -> str:
        """Stable for the same transition: folded again after a crash, the same alert (and
        the same delivery ids, which the settled-jobs table sends once)."""
        text = f"{self.kind}\n{self.url}\n{self.at!r}"
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def body(self, policy: AlertPolicy) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": ALERT_TYPE,
            "alert": self.kind,
            "id": self.id,
            "at": iso(self.at),
            "workspace": self.workspace,
            "endpoint": self.endpoint_id,
            "url": endpoint_label(self.url),
            "reason": self.reason,
        }
        if self.kind == DEAD_LETTERS:
            body["dead_letters"] = self.count
            body["window_s"] = policy.window_s
        body["text"] = self.text(policy)
        return body

    def text(self, policy: AlertPolicy) -> str:
        name = f"{self.workspace or 'default'}/{self.endpoint_id or 'default'}"
        where = f"endpoint {name} ({endpoint_label(self.url)})"
        because = f": {self.reason}" if self.reason else ""
        return {
            OPENED: f":red_circle: omnihooks: {where} is failing{because}. Its webhooks are "
            "held, none lost, until it recovers.",
            CLOSED: f":large_green_circle: omnihooks: {where} has recovered{because}; its held "
            "webhooks are being delivered.",
            PAUSED: f":double_vertical_bar: omnihooks: {where} was paused by an operator"
            f"{because}. Its webhooks are held until it is resumed.",
            RESUMED: f":arrow_forward: omnihooks: {where} was resumed{because}.",
            DEAD_LETTERS: f":warning: omnihooks: {self.count} webhooks to {where} were "
            f"dead-lettered within {policy.window_s:.0f} s{because}. See `omnihooks dlq list`.",
        }[self.kind]


def fold(
    state: EndpointAlertState | None, event: HealthEvent, policy: AlertPolicy, now: float
) -> tuple[EndpointAlertState, list[Alert]]:
    """One fact about `event.url` on what is known of it; the alerts it raises."""
    before = state or EndpointAlertState(url=event.url)
    after = replace(
        before,
        workspace=event.workspace if event.workspace is not None else before.workspace,
        endpoint_id=event.endpoint_id if event.endpoint_id is not None else before.endpoint_id,
    )
    count = 0
    if event.kind == "opened":
        after = replace(after, open_by={**after.open_by, event.worker: event.at},
                        reason=event.reason or after.reason)  # fmt: skip
    elif event.kind == "closed":
        after = replace(after, open_by=_without(after.open_by, event.worker))
    elif event.kind in ("paused", "resumed"):
        after = replace(after, paused=event.kind == "paused")
    elif event.kind == "dead_letter":
        recent = tuple(t for t in after.dead_letters if t > event.at - policy.window_s)
        if event.at not in recent:  # a fact said twice (a flush cut short) counts once
            recent = (*recent, event.at)[-policy.dead_letters :]
        count = len(recent)
        after = replace(after, dead_letters=recent, reason=event.reason or after.reason)
    alerts = _transitions(before, after, event)
    if event.kind == "dead_letter":
        reached = count >= policy.dead_letters
        if reached and not before.dead_letters_alerted:
            alerts.append(_alert(DEAD_LETTERS, after, event.at, event.reason, count))
        after = replace(after, dead_letters_alerted=reached)
    if now - event.at > policy.stale_s:
        alerts = []
    return after, alerts


def fold_heartbeat(
    states: Iterable[EndpointAlertState], event: HealthEvent, policy: AlertPolicy, now: float
) -> list[tuple[EndpointAlertState, list[Alert]]]:
    """A worker's heartbeat over every endpoint known: its claims are refreshed (or dropped,
    for a URL it no longer holds open, unless made before it restarted), and claims of
    workers silent for `claim_ttl_s` expire. Returns the states that changed, with their
    alerts."""
    changed = []
    seen = set()
    for before in states:
        seen.add(before.url)
        claims = dict(before.open_by)
        if before.url in event.open:
            claims[event.worker] = event.at
        elif claims.get(event.worker, event.started) >= event.started:
            claims.pop(event.worker, None)
        # else: a claim of the worker's life before a restart (a deploy), left to age out:
        # its new breaker may not have met the failures yet, and would open again at once
        # (a false "closed" then "opened"); if the endpoint is well, the claim ages out
        expired = {w for w, at in claims.items() if at < event.at - policy.claim_ttl_s}
        for worker in expired:
            del claims[worker]
        if claims == before.open_by:
            continue
        after = replace(before, open_by=claims)
        reason = "the workers that held it open no longer report it open" if expired else ""
        alerts = _transitions(before, after, replace(event, reason=reason))
        changed.append((after, [] if now - event.at > policy.stale_s else alerts))
    for url in event.open:  # held open by this worker, never heard of: its opened was lost
        if url not in seen:
            state, alerts = fold(None, replace(event, kind="opened", url=url), policy, now)
            changed.append((state, alerts))
    return changed


def _transitions(
    before: EndpointAlertState, after: EndpointAlertState, event: HealthEvent
) -> list[Alert]:
    alerts = []
    if not before.open_by and after.open_by:
        alerts.append(_alert(OPENED, after, event.at, after.reason))
    elif before.open_by and not after.open_by:
        alerts.append(_alert(CLOSED, after, event.at, event.reason))
    if after.paused != before.paused:
        alerts.append(_alert(PAUSED if after.paused else RESUMED, after, event.at, event.reason))
    return alerts


def _alert(kind: str, state: EndpointAlertState, at: float, reason: str, count: int = 0) -> Alert:
    return Alert(kind, state.url, state.workspace, state.endpoint_id, at, reason, count)


def _without(claims: dict[str, float], worker: str) -> dict[str, float]:
    return {w: at for w, at in claims.items() if w != worker}


def alert_jobs(
    alert: Alert, directory: EndpointDirectory, policy: AlertPolicy, created_at: str
) -> list[WebhookJob]:
    """The alert as a job for each alert endpoint that takes it: the global ones and the
    workspace's own. A workspace's alert endpoint hears only of its own endpoint (endpoints
    of two workspaces may share a URL, and so a breaker). None about an alert endpoint
    itself: one that fails would otherwise alert about itself, through itself, for ever."""
    subjects = directory.at_url(alert.url)
    if subjects and all(endpoint.alerts for endpoint in subjects):
        return []
    subjects = [s for s in subjects if not s.alerts]
    workspaces = {e.workspace for e in subjects} or {alert.workspace or DEFAULT_WORKSPACE}
    jobs = []
    for receiver in directory.alert_receivers(workspaces):
        if receiver.alerts == "workspace":
            about = [s for s in subjects if s.workspace == receiver.workspace]
        else:
            about = subjects
        named = _naming(alert, about)
        jobs.append(WebhookJob(
            delivery_id=_delivery_id(alert, receiver), type=ALERT_TYPE, room_id=None,
            url=receiver.url, body=named.body(policy), created_at=created_at,
            event_id=f"alert:{alert.id}", workspace=receiver.workspace, endpoint_id=receiver.id,
        ))  # fmt: skip
    return jobs


def _naming(alert: Alert, about: list[EndpointRecord]) -> Alert:
    """The alert naming one of the endpoints at its URL the receiver may hear of: the one
    the fact named when it is among them (a pause names only a URL), else the first."""
    named = (alert.workspace or DEFAULT_WORKSPACE, alert.endpoint_id)
    if not about or any((e.workspace, e.id) == named for e in about):
        return alert
    return dataclasses.replace(alert, workspace=about[0].workspace, endpoint_id=about[0].id)


def _delivery_id(alert: Alert, receiver: EndpointRecord) -> str:
    text = f"{alert.id}\n{receiver.workspace}/{receiver.id}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]

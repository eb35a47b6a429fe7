"""The alert agents: `health-controls` forwards operators' pauses and resumes to
`endpoint-health`; `alerts` folds that topic (one partition: one owner in the group, so
one fold cluster-wide) into the `endpoint-alerts` table and sends each alert as a job to the
alert endpoints, delivered like any webhook (retries, dead letters, signatures).

An alert's jobs are on the brokers before its state is written: a crash in between folds
the fact again and makes the same alert with the same delivery ids, which the settled-jobs
table POSTs once.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from faust.types import StreamT

from streams.agents.tables import ENDPOINT_ALERTS
from streams.app import Omnihooks, send_rejected
from streams.core.alerts import Alert, alert_jobs, fold, fold_heartbeat
from streams.core.clock import iso, parse_iso
from streams.delivery.health_report import HealthReport
from streams.engine import DirectTable, bytes_table, finish
from topics import codec
from topics.catalogue import Topic
from topics.records import EndpointControl, HealthEvent
from topics.state import EndpointAlertState

log = logging.getLogger(__name__)


class AlertAgent:
    def __init__(self, omnihooks: Omnihooks, table: DirectTable) -> None:
        self.omnihooks = omnihooks
        self.table = table
        self.policy = omnihooks.settings.alert_policy()
        self.jobs = omnihooks.topics[Topic.WEBHOOK_JOBS]
        self.rejected = omnihooks.topics[Topic.REJECTED]

    async def run(self, stream: StreamT[Any]) -> None:
        await self.omnihooks.endpoints_loaded.wait()  # alert endpoints known before any fold
        async for event in stream.noack().events():  # type: ignore[attr-defined]  # noack is on Stream, not StreamT
            try:
                fact = HealthEvent.from_json(event.value)
            except (codec.JSONDecodeError, TypeError, ValueError) as exc:  # None: TypeError
                await send_rejected(self.rejected, event.message, f"not a health event: {exc}")
            else:
                await self.apply(fact)
            finish(event)

    async def apply(self, fact: HealthEvent) -> None:
        now = time.time()
        if fact.kind == "heartbeat":
            states = [EndpointAlertState.from_json(v) for v in self.table.values()]
            changes = fold_heartbeat(states, fact, self.policy, now)
        else:
            raw = self.table.get(fact.url.encode())
            state = None if raw is None else EndpointAlertState.from_json(raw)
            changes = [fold(state, fact, self.policy, now)]
        for state, alerts in changes:
            for alert in alerts:
                await self.send(alert)
            self.table[state.url.encode()] = state.to_json()

    async def send(self, alert: Alert) -> None:
        jobs = alert_jobs(alert, self.omnihooks.endpoints, self.policy, iso(time.time()))
        for job in jobs:
            await (await self.jobs.send(key=job.key(), value=job.to_json()))
        log.warning("alert %s: %s (to %d alert endpoints)",
                    alert.kind, alert.text(self.policy), len(jobs))  # fmt: skip


class ControlsForwarder:
    """Each operator's pause or resume, as a fact on `endpoint-health`."""

    def __init__(self, omnihooks: Omnihooks, worker: str) -> None:
        self.health = omnihooks.topics[Topic.ENDPOINT_HEALTH]
        self.worker = worker

    async def run(self, stream: StreamT[Any]) -> None:
        async for event in stream.noack().events():  # type: ignore[attr-defined]  # noack is on Stream, not StreamT
            fact = self.fact(event.message)
            if fact is not None:
                await (await self.health.send(key=fact.url.encode(), value=fact.to_json()))
            finish(event)

    def fact(self, message: Any) -> HealthEvent | None:
        if message.value is None:  # a tombstone: the endpoint's controls are gone, it flows
            if message.key is None:
                return None
            return HealthEvent("resumed", self.worker, message.timestamp, message.key.decode())
        try:
            control = EndpointControl.from_json(message.value)
        except ValueError:
            log.warning("endpoint-controls@%d is not a control: no alert", message.offset)
            return None
        kind = "paused" if control.paused else "resumed"
        return HealthEvent(kind, self.worker, parse_iso(control.at), control.url,
                           reason=control.reason)  # fmt: skip


def register_alert_agents(omnihooks: Omnihooks, health: HealthReport) -> None:
    app, topics, settings = omnihooks.app, omnihooks.topics, omnihooks.settings
    partitions = omnihooks.catalogue[ENDPOINT_ALERTS.partitions_of].partitions
    table = bytes_table(app, ENDPOINT_ALERTS.name, partitions, ENDPOINT_ALERTS.help,
                        ENDPOINT_ALERTS.config)  # fmt: skip
    agent = AlertAgent(omnihooks, DirectTable(app, table))
    app.agent(topics[Topic.ENDPOINT_HEALTH], name="alerts")(agent.run)
    forwarder = ControlsForwarder(omnihooks, health.worker)
    app.agent(topics[Topic.ENDPOINT_CONTROLS], name="health-controls")(forwarder.run)

    async def report_health() -> None:
        await health.flush()

    async def heartbeat() -> None:
        health.heartbeat()

    app.timer(interval=1.0, name="endpoint-health")(report_health)
    app.timer(interval=settings.health_interval_s, name="health-heartbeat")(heartbeat)

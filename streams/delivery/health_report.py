"""What a delivery worker tells the alert agent (streams/agents/alerts.py) about endpoint
health: each of its breakers opening or closing, each dead letter, and a heartbeat with the
URLs it holds open, on the single-partition `endpoint-health` topic.

Facts are queued as they happen (on the delivery hot path: no await) and written by the
worker's timer about once a second; a fact lost in a crash is made good by the next
heartbeat of the worker that restarts, or by its claims ageing out.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from streams.core.alerts import ALERT_TYPE
from streams.delivery.endpoint_gates import EndpointGates
from topics.records import HealthEvent, WebhookJob


def worker_name(group_instance_id: str) -> str:
    """This worker among the others: its static member id (kept across restarts), else its
    host and process."""
    return group_instance_id or f"{socket.gethostname()}-{os.getpid()}"


class HealthReport:
    def __init__(self, topic: Any, worker: str, gates: EndpointGates) -> None:
        self.topic, self.worker, self.gates = topic, worker, gates
        self.started = time.time()
        self._queued: list[HealthEvent] = []

    def breaker_changed(self, job: WebhookJob, opened: bool, reason: str) -> None:
        self._queue("opened" if opened else "closed", job, reason)

    def dead_lettered(self, job: WebhookJob, reason: str) -> None:
        if job.type != ALERT_TYPE:  # an alert endpoint's failures raise no alert about it
            self._queue("dead_letter", job, reason)

    def _queue(self, kind: str, job: WebhookJob, reason: str) -> None:
        self._queued.append(HealthEvent(
            kind, self.worker, time.time(), job.url, job.workspace, job.endpoint_id, reason,
        ))  # fmt: skip

    def heartbeat(self) -> None:
        beat = HealthEvent("heartbeat", self.worker, time.time(), open=self.gates.open_urls(),
                           started=self.started)  # fmt: skip
        self._queued.append(beat)

    async def flush(self) -> None:
        queued, self._queued = self._queued, []
        for sent, event in enumerate(queued):
            key = (event.url or self.worker).encode()
            try:
                await (await self.topic.send(key=key, value=event.to_json()))
            except BaseException:
                self._queued[:0] = queued[sent:]  # the unsent, first next time
                raise

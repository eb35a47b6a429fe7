"""The delivery sink: one job's attempt and its outcome, delivered, retry or dead letter.

Two agents share one `Delivery`: `deliver` reads fresh jobs, `retry` reads jobs waiting for
their next attempt and waits for each due time in its own task, so a job waiting never blocks
another job, room or partition. Each job runs in its own task (bounded), and events are
acknowledged per partition in offset order (`InOrderSink`) only once their job is delivered,
re-queued or dead-lettered, so a committed offset never passes a job still in flight.

Each endpoint has a circuit breaker (`streams/core/breaker.py`). A fresh job for an open endpoint
is moved, unattempted, to the retries topic; there the retry agent holds it (and every retry
for that endpoint) until a probe succeeds, so a dead endpoint costs the worker one produce per
job instead of ten failing POSTs, and its jobs spend no attempts while it is down.

With `OMNIHOOKS_DELIVERY_ORDER=room` (the default) a room's jobs also keep their order per
endpoint (`streams/delivery/room_lines.py`): a job waits while an earlier job of its room is
pending, in memory behind one in flight, in the retries topic behind one there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from typing import Any

from msgspec.structs import replace

from streams import metrics
from streams.app import Omnihooks, send_rejected
from streams.core.breaker import Pass
from streams.core.clock import iso
from streams.core.endpoints import endpoint_label
from streams.core.expressions import ExpressionError, render
from streams.core.retry import Verdict, next_attempt, retry_after_seconds
from streams.delivery.endpoint_gates import ALWAYS, EndpointGates
from streams.delivery.failure_log import FailureLog
from streams.delivery.health_report import HealthReport, worker_name
from streams.delivery.room_lines import RoomLines
from streams.delivery.settled import SettledJobs
from streams.delivery.targets import Targets, breaker_policy_from
from streams.delivery.webhook_client import WebhookClient, job_body
from topics.catalogue import Topic
from topics.records import CrmDataRecord, DeadLetter, EndpointControl, WebhookJob

log = logging.getLogger(__name__)

# Rocket.Chat ignores the offline-message webhook's answer: it never becomes crmData.
NO_CRM_DATA = frozenset({"LivechatOfflineMessage"})


class Delivery:
    """One job's attempt and its outcome: POST, then delivered, retry or dead letter."""

    def __init__(
        self,
        omnihooks: Omnihooks,
        client: WebhookClient,
        settled: SettledJobs | None,
        lines: RoomLines | None = None,
    ) -> None:
        self.settings = omnihooks.settings
        self.client = client
        self.settled = settled
        self.lines = lines
        self.endpoints = omnihooks.endpoints
        self.endpoints_loaded = omnihooks.endpoints_loaded
        self.targets = Targets(self.settings, omnihooks.endpoints)
        self.retries = omnihooks.topics[Topic.WEBHOOK_RETRIES]
        self.dead_letters = omnihooks.topics[Topic.WEBHOOK_DEAD_LETTERS]
        self.crm_data = omnihooks.topics[Topic.CRM_DATA]
        self.rejected = omnihooks.topics[Topic.REJECTED]
        self.posts = asyncio.Semaphore(self.settings.delivery_concurrency)
        self.failures = FailureLog(log, time.monotonic)
        self.gates = EndpointGates(breaker_policy_from(self.settings))
        worker = worker_name(self.settings.group_instance_id)
        self.health = HealthReport(omnihooks.topics[Topic.ENDPOINT_HEALTH], worker, self.gates)
        # set once the operators' pauses are read (`endpoint-controls`): nothing is attempted
        # before, so a paused endpoint gets no POST from a worker that just started
        self.controls_loaded = asyncio.Event()
        controls = omnihooks.catalogue[Topic.ENDPOINT_CONTROLS]
        self.controls_topic = controls.name(self.settings.topic_prefix)
        self.controls_partitions = controls.partitions

    def apply_control(self, key: bytes | None, value: bytes | None) -> None:
        if value is None:  # a tombstone: the endpoint's controls are gone, so it flows
            if key is not None:
                self.gates.set_paused(key.decode(), False)
            return
        control = EndpointControl.from_json(value)
        self.gates.set_paused(control.url, control.paused)
        log.warning("endpoint %s %s by an operator at %s%s", endpoint_label(control.url),
                    "paused" if control.paused else "resumed", control.at,
                    f": {control.reason}" if control.reason else "")  # fmt: skip

    async def settle(self, job: WebhookJob, leave: Pass = ALWAYS, fresh: bool = True) -> None:
        settled = self.settled
        if settled is None:
            await self.attempt(job, leave, fresh)
            return
        try:
            first = settled.begin(job)
        except BaseException:
            self.gates.release(job.url, leave)  # a probe that never went
            raise
        if not first:
            self.gates.release(job.url, leave)
            if self.lines is not None:
                outcome = settled.outcome(job)
                if outcome is not None and outcome.final:
                    self.lines.leave(job)
                else:  # its newer copy is pending (in flight, or in the retries topic)
                    self.lines.step_out(job, fresh)
            metrics.ALREADY_SETTLED.labels(job.type).inc()
            log.debug("job %s (%s) settled already: not sent again", job.delivery_id, job.type)
            return
        try:
            await self.attempt(job, leave, fresh)
        finally:
            settled.end(job)

    async def hold(self, job: WebhookJob, fresh: bool) -> None:
        """The job's endpoint is open or paused: write the job, unattempted, to the tail of
        the retries topic, where the retry agent holds it until the endpoint lets it
        through, and let its offset go. The deliver agent does this for a fresh job (its
        partition goes on with other endpoints' jobs); the retry agent for a job it held a
        lease long, so no offset stays uncommitted longer than that, however long the hold:
        a crash then repeats nothing older than the lease, and no held record outlives the
        retries topic's retention."""
        if job.held_since is None:
            job = replace(job, held_since=iso(time.time()))
        if self.lines is not None:
            self.lines.park(job, fresh)
        await (await self.retries.send(key=job.key(), value=job.to_json()))

    def _settled(self, job: WebhookJob, attempts: int, final: bool, now: float) -> None:
        if self.settled is not None:
            self.settled.settle(job, attempts, final=final, now=now)

    async def attempt(self, job: WebhookJob, leave: Pass, fresh: bool = True) -> None:
        try:
            # The endpoint as it is now, at every attempt: its URL, credentials, template,
            # or its removal. Nothing is sent after a change that says not to.
            target = self.targets.of(job)
            request = None
            if target.gone:
                self.gates.release(job.url, leave)
                await self.dead_letter_unsent(job, target.gone)
                return
            if target.template:
                try:
                    request = render(target.template, job_body(job))
                except ExpressionError as exc:  # not transient: no retry would fix it
                    self.gates.release(job.url, leave)
                    # the alert gets no libjq message: it may quote the visitor's data
                    await self.dead_letter_unsent(job, str(exc), "its template failed on it")
                    return
            async with target.limit or contextlib.nullcontext(), self.posts:
                metrics.IN_FLIGHT.inc()
                try:
                    answer = await self.client.post(
                        job, credentials=target.credentials, request=request
                    )
                finally:
                    metrics.IN_FLIGHT.dec()
        except BaseException:
            self.gates.release(job.url, leave)  # a probe that never got its answer
            raise
        attempt = answer.attempt
        label = endpoint_label(job.url)
        metrics.LATENCY.observe(attempt.duration_ms / 1000)
        metrics.ENDPOINT_POST_SECONDS.labels(label).observe(attempt.duration_ms / 1000)
        # Only what a retry could fix says the endpoint is unwell: a 4xx that the rule does
        # not retry is the endpoint answering, about this job.
        policy = target.policy
        endpoint_failed = not policy.is_success(attempt.status) and (
            policy.is_retriable(attempt.status, attempt.error)
        )
        changed = self.gates.record(job.url, leave, job.delivery_id, endpoint_failed)
        if changed is not None:
            outcome = attempt.error or f"HTTP {attempt.status}"
            self.health.breaker_changed(job, changed, outcome if changed else "")
        now = time.time()
        retry_after = retry_after_seconds(answer.retry_after, now)
        draw = random.uniform(-1.0, 1.0) if policy.jitter else 0.0
        decision = next_attempt(job, attempt, policy, now, leave.probe, retry_after, draw)
        attempts = len(job.attempts) + 1
        # Each outcome is written once what it sent is on the brokers: a crash in between
        # then repeats the attempt rather than losing the retry, dead letter or crm-data.
        if decision.verdict is Verdict.DELIVERED:
            metrics.DELIVERED.labels(job.type).inc()
            metrics.ENDPOINT_OUTCOMES.labels(label, "delivered").inc()
            if target.crm_answers and self.keeps_answer(job, answer.body):
                await self.publish_crm_data(job, answer.body)
            self._settled(job, attempts, final=True, now=now)
            self._leave(job)
            return
        metrics.FAILED_ATTEMPTS.labels(job.type).inc()
        if decision.verdict is Verdict.RETRY:
            metrics.RETRIED.labels(job.type).inc()
            metrics.ENDPOINT_OUTCOMES.labels(label, "retry").inc()
            if self.lines is not None:
                self.lines.park(job, fresh)
            await (await self.retries.send(key=job.key(), value=decision.job.to_json()))
            self._settled(job, attempts, final=False, now=now)
            outcome = attempt.error or f"HTTP {attempt.status}"
            self.failures.failed(
                job.url, "job %s (%s, room %s) attempt %d failed: %s; retry at %s",
                job.delivery_id, job.type, job.room_id, len(decision.job.attempts), outcome,
                decision.job.due_at, reason=outcome,
            )  # fmt: skip
            return
        metrics.DEAD_LETTERED.labels(job.type).inc()
        metrics.ENDPOINT_OUTCOMES.labels(label, "dead_letter").inc()
        dead_letter = decision.dead_letter(now).to_json()
        await (await self.dead_letters.send(key=job.key(), value=dead_letter))
        self._settled(job, attempts, final=True, now=now)
        self._leave(job)
        self.health.dead_lettered(job, decision.reason)
        log.warning("job %s (%s) dead-lettered: %s", job.delivery_id, job.type, decision.reason)

    async def dead_letter_unsent(
        self, job: WebhookJob, reason: str, told: str | None = None
    ) -> None:
        """To the dead letters without a POST (its endpoint is gone, its template fails on
        it): replayable once the endpoint or the template is put right. `told`: the reason
        as the alerts give it, when `reason` may hold the webhook's data."""
        now = time.time()
        metrics.DEAD_LETTERED.labels(job.type).inc()
        metrics.ENDPOINT_OUTCOMES.labels(endpoint_label(job.url), "dead_letter").inc()
        record = DeadLetter(job=job, attempts=job.attempts, dead_lettered_at=iso(now),
                            reason=reason)  # fmt: skip
        await (await self.dead_letters.send(key=job.key(), value=record.to_json()))
        self._settled(job, len(job.attempts), final=True, now=now)
        self._leave(job)
        self.health.dead_lettered(job, told or reason)
        log.warning("job %s (%s) dead-lettered unsent: %s", job.delivery_id, job.type, reason)

    def retarget(self, job: WebhookJob) -> WebhookJob:
        """The job aimed at its endpoint's URL as it is now: an endpoint moved by an operator
        gets its pending jobs at the new address."""
        if job.endpoint_id is None or job.url_pinned:
            return job
        endpoint = self.endpoints.find(job.workspace, job.endpoint_id)
        if endpoint is None or endpoint.url == job.url:
            return job
        return replace(job, url=endpoint.url)

    def _leave(self, job: WebhookJob) -> None:
        if self.lines is not None:
            self.lines.leave(job)

    def keeps_answer(self, job: WebhookJob, body: bytes) -> bool:
        """Whether a 200 answer goes back to the room as crmData: a non-empty one always; an
        empty one too under rocketchat-7, where it replaces the old value."""
        if not job.room_id or job.type in NO_CRM_DATA:
            return False
        return bool(body.strip()) or not self.settings.profile.crm_data_from_data_property

    async def publish_crm_data(self, job: WebhookJob, body: bytes) -> None:
        if len(body) > self.settings.crm_data_max_bytes:
            log.warning(
                "job %s: answer of %d bytes is over OMNIHOOKS_CRM_DATA_MAX_BYTES; not kept",
                job.delivery_id,
                len(body),
            )
            return
        # Rocket.Chat keeps the answer as raw text and echoes it as crmData.
        text = body.decode("utf-8", "replace")
        record = CrmDataRecord(job.room_id or "", text, job.delivery_id, iso(time.time()))
        sent = await self.crm_data.send(
            key=job.key(), value=record.to_json(), partition=job.room_partition
        )
        await sent

    async def reject(self, event: Any, reason: str) -> None:
        await send_rejected(self.rejected, event.message, reason)

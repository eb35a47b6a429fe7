"""The delivery side: agents that POST jobs and route each to delivered, retry or dead letter.

Two agents share one pipeline: `deliver` reads fresh jobs, `retry` reads jobs waiting for their
next attempt and waits for each due time in its own task, so a job waiting never blocks
another job, room or partition. Each job runs in its own task (bounded), and events are
acknowledged per partition in offset order only once their job is delivered, re-queued or
dead-lettered, so a committed offset never passes a job still in flight (at-least-once).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import mode
from faust.types import StreamT

from streams import metrics
from streams.app import Omnihooks, send_rejected
from streams.clock import iso, parse_iso
from streams.engine import bytes_table, forget_locally
from streams.engine.sink import Entry, InOrderSink
from streams.failure_log import FailureLog
from streams.retry import RetryPolicy, Verdict, next_attempt
from streams.settled import SettledJobs
from streams.webhook_client import WebhookClient
from topics import codec
from topics.catalogue import Topic
from topics.records import CrmDataRecord, WebhookJob

log = logging.getLogger(__name__)

# Rocket.Chat ignores the offline-message webhook's answer: it never becomes crmData.
NO_CRM_DATA = frozenset({"LivechatOfflineMessage"})


def policy_from(omnihooks: Omnihooks) -> RetryPolicy:
    settings = omnihooks.settings
    return RetryPolicy(
        retries=settings.retry_attempts,
        delay_s=settings.retry_delay_s,
        rule=settings.retry_rule,
        accept_any_2xx=settings.accept_any_2xx,
    )


def register_delivery_agents(omnihooks: Omnihooks) -> WebhookClient:
    """Add the deliver and retry agents to the app; returns its HTTP client."""
    app, settings, topics = omnihooks.app, omnihooks.settings, omnihooks.topics
    client = WebhookClient(settings)
    policy = policy_from(omnihooks)
    retries_topic = topics[Topic.WEBHOOK_RETRIES]
    dead_topic = topics[Topic.WEBHOOK_DEAD_LETTERS]
    crm_topic = topics[Topic.CRM_DATA]
    rejected_topic = topics[Topic.REJECTED]
    posts = asyncio.Semaphore(settings.delivery_concurrency)
    failures = FailureLog(log, time.monotonic)
    retention_ms = str(int(settings.settled_retention_s * 1000))
    settled_table = bytes_table(
        app,
        "settled-jobs",
        omnihooks.catalogue[Topic.WEBHOOK_JOBS].partitions,
        "outcome per delivery id, so a job read twice is POSTed once",
        {"cleanup.policy": "compact,delete", "retention.ms": retention_ms},
    )
    settled = SettledJobs(settled_table)

    async def settle(job: WebhookJob) -> None:
        if not settled.begin(job):
            metrics.ALREADY_SETTLED.labels(job.type).inc()
            log.debug("job %s (%s) settled already: not sent again", job.delivery_id, job.type)
            return
        try:
            await attempt_once(job)
        finally:
            settled.end(job)

    async def attempt_once(job: WebhookJob) -> None:
        async with posts:
            metrics.IN_FLIGHT.inc()
            try:
                answer = await client.post(job)
            finally:
                metrics.IN_FLIGHT.dec()
        attempt = answer.attempt
        metrics.LATENCY.observe(attempt.duration_ms / 1000)
        now = time.time()
        decision = next_attempt(job, attempt, policy, now)
        attempts = len(job.attempts) + 1
        # Each outcome is written once what it sent is on the brokers: a crash in between
        # then repeats the attempt rather than losing the retry, dead letter or crm-data.
        if decision.verdict is Verdict.DELIVERED:
            metrics.DELIVERED.labels(job.type).inc()
            if answer.body.strip() and job.room_id and job.type not in NO_CRM_DATA:
                await publish_crm_data(job, answer.body)
            settled.settle(job, attempts, final=True, now=now)
            return
        metrics.FAILED_ATTEMPTS.labels(job.type).inc()
        if decision.verdict is Verdict.RETRY:
            metrics.RETRIED.labels(job.type).inc()
            await (await retries_topic.send(key=job.key(), value=decision.job.to_json()))
            settled.settle(job, attempts, final=False, now=now)
            outcome = attempt.error or f"HTTP {attempt.status}"
            failures.failed(
                job.url, "job %s (%s, room %s) attempt %d failed: %s; retry at %s",
                job.delivery_id, job.type, job.room_id, len(decision.job.attempts), outcome,
                decision.job.due_at, reason=outcome,
            )  # fmt: skip
            return
        metrics.DEAD_LETTERED.labels(job.type).inc()
        await (await dead_topic.send(key=job.key(), value=decision.dead_letter(now).to_json()))
        settled.settle(job, attempts, final=True, now=now)
        log.warning("job %s (%s) dead-lettered: %s", job.delivery_id, job.type, decision.reason)

    async def publish_crm_data(job: WebhookJob, body: bytes) -> None:
        if len(body) > settings.crm_data_max_bytes:
            log.warning(
                "job %s: answer of %d bytes is over OMNIHOOKS_CRM_DATA_MAX_BYTES; not kept",
                job.delivery_id,
                len(body),
            )
            return
        # Rocket.Chat keeps the answer as raw text and echoes it as crmData.
        text = body.decode("utf-8", "replace")
        record = CrmDataRecord(job.room_id or "", text, job.delivery_id, iso(time.time()))
        sent = await crm_topic.send(
            key=job.key(), value=record.to_json(), partition=job.room_partition
        )
        await sent

    async def reject(event: Any, reason: str) -> None:
        await send_rejected(rejected_topic, event.message, reason)

    def pipeline(name: str, wait_until_due: bool, pending_limit: int) -> Any:
        sink = InOrderSink(pending_limit)

        async def handle(event: Any, entry: Entry) -> None:
            try:
                await deliver_one(event)
            except asyncio.CancelledError:
                # Shutting down: never finished, so neither this offset nor any after it in
                # the partition is committed; the job is read again after the restart.
                sink.abandon(entry)
                raise
            sink.finish(entry)

        async def deliver_one(event: Any) -> None:
            try:
                try:
                    job = WebhookJob.from_json(event.value)
                except (codec.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                    await reject(event, f"not a webhook job: {type(exc).__name__}: {exc}")
                    return
                if wait_until_due and job.due_at:
                    delay = parse_iso(job.due_at) - time.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                await settle(job)
            except Exception:  # not CancelledError (a BaseException): handle() sees that
                # A bug, not a delivery failure. Leave the event unacked? That would stall
                # the partition's commits forever; log it loudly and keep the job instead.
                log.exception("delivering %s[%d]@%d failed", event.message.topic,
                              event.message.partition, event.message.offset)  # fmt: skip
                await reject(event, "internal error while delivering; see the worker log")

        async def agent(stream: StreamT[Any]) -> None:
            tasks: set[asyncio.Task[None]] = set()
            async for event in stream.noack().events():  # type: ignore[attr-defined]  # noack is on Stream, not StreamT
                entry = await sink.track(event)
                task = asyncio.create_task(
                    handle(event, entry), name=f"{name}-{event.message.offset}"
                )
                tasks.add(task)
                task.add_done_callback(tasks.discard)

        return agent

    # A retry waits in its task; allow many such waits before pausing the retries topic.
    app.agent(topics[Topic.WEBHOOK_JOBS], name="deliver")(
        pipeline("deliver", wait_until_due=False, pending_limit=settings.delivery_concurrency * 4)
    )
    app.agent(retries_topic, name="retry")(
        pipeline("retry", wait_until_due=True, pending_limit=settings.delivery_concurrency * 64)
    )

    class HttpClientService(mode.Service):
        """Opens the pooled HTTP session with the worker and closes it on shutdown."""

        async def on_start(self) -> None:
            await client.start()

        async def on_stop(self) -> None:
            await client.close()
            failures.flush(everything=True)

    app.service(HttpClientService)

    async def summarize_failed_attempts() -> None:
        failures.flush()

    watched: dict[str, frozenset[Any]] = {"assigned": frozenset()}

    async def forget_expired_outcomes() -> None:
        assigned = frozenset(app.consumer.assignment()) if app.consumer else frozenset()
        if assigned != watched["assigned"]:
            watched["assigned"] = assigned
            settled.reread()  # recovery brought the outcomes of newly assigned partitions
        forget_locally(settled_table, settled.expired(time.time(), settings.settled_retention_s))

    app.timer(interval=30.0, name="settled-jobs-expiry")(forget_expired_outcomes)

    app.timer(interval=1.0, name="failed-attempts-summary")(summarize_failed_attempts)
    return client

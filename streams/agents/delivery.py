"""The delivery side: agents that POST jobs and route each to delivered, retry or dead letter.

Two agents share one `Delivery`: `deliver` reads fresh jobs, `retry` reads jobs waiting for
their next attempt and waits for each due time in its own task, so a job waiting never blocks
another job, room or partition. Each job runs in its own task (bounded), and events are
acknowledged per partition in offset order (`InOrderSink`) only once their job is delivered,
re-queued or dead-lettered, so a committed offset never passes a job still in flight.

Each endpoint has a circuit breaker (`streams/breaker.py`). A fresh job for an open endpoint
is moved, unattempted, to the retries topic; there the retry agent holds it (and every retry
for that endpoint) until a probe succeeds, so a dead endpoint costs the worker one produce per
job instead of ten failing POSTs, and its jobs spend no attempts while it is down.

With `OMNIHOOKS_DELIVERY_ORDER=room` (the default) a room's jobs also keep their order per
endpoint (`streams/room_lines.py`): a job waits while an earlier job of its room is pending,
in memory behind one in flight, in the retries topic behind one there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import mode
from faust.types import StreamT

from streams import metrics
from streams.app import AssignmentWatch, Omnihooks, send_rejected
from streams.core.breaker import BreakerPolicy, Pass
from streams.core.clock import iso, parse_iso
from streams.core.compat import profile_named, retry_delay_s
from streams.core.endpoints import EndpointDirectory, endpoint_label, signing_secrets
from streams.core.retry import (
    RetryPolicy,
    Verdict,
    held_too_long,
    next_attempt,
    retry_after_seconds,
)
from streams.delivery.endpoint_gates import ALWAYS, EndpointGates
from streams.delivery.failure_log import FailureLog
from streams.delivery.room_lines import RoomLines
from streams.delivery.settled import SettledJobs
from streams.delivery.webhook_client import Credentials, WebhookClient
from streams.engine import DirectTable, bytes_table, forget_locally, let_go_before_waiting
from streams.engine.followers import follower_service
from streams.engine.sink import Entry, InOrderSink
from streams.settings import Settings
from topics import codec
from topics.catalogue import Topic
from topics.records import CrmDataRecord, EndpointControl, EndpointRecord, WebhookJob

log = logging.getLogger(__name__)

# Rocket.Chat ignores the offline-message webhook's answer: it never becomes crmData.
NO_CRM_DATA = frozenset({"LivechatOfflineMessage"})
INTERNAL_ERROR = "internal error while delivering; see the worker log"
# A retry whose room's earlier jobs took its whole lease still gets this long at its gate.
MIN_GATE_WAIT_S = 1.0
# Before a rebalance, POSTs under way get their HTTP timeout and this long to finish (the
# outcome's produce), then the rebalance goes on without them.
LET_GO_S = 5.0


def policy_from(settings: Settings, endpoint: EndpointRecord | None = None) -> RetryPolicy:
    """The worker's retry policy, or an endpoint's: its own attempts, delay and timeout,
    else the worker's settings, else its compatibility profile's."""
    if endpoint is None:
        retries, delay_s, rule = (
            settings.retries,
            settings.retry_delay,
            settings.retry_rule_in_force,
        )
    else:
        profile = profile_named(endpoint.compat or settings.compat)
        timeout_s = (endpoint.timeout_ms or settings.http_timeout_ms) / 1000
        retries = _first(endpoint.retry_attempts, settings.retry_attempts, profile.retries)
        delay_s = _first(endpoint.retry_delay_s, settings.retry_delay_s,
                         retry_delay_s(profile, timeout_s))  # fmt: skip
        # the worker's rule when set (its alias resolved there), else the endpoint's profile's
        rule = settings.retry_rule_in_force if settings.retry_rule else profile.retry_rule
    return RetryPolicy(
        retries=retries,
        delay_s=delay_s,
        rule=rule,
        accept_any_2xx=settings.accept_any_2xx,
        jitter=settings.retry_jitter,
        retry_after_max_s=settings.retry_after_max_s,
    )


def _first(*values: Any) -> Any:
    return next(value for value in values if value is not None)


@dataclass(frozen=True)
class Target:
    """How one endpoint's jobs go: its retry policy, its token, keys and timeout (None: the
    worker's), and its own limit on POSTs in flight (None: only the worker's)."""

    policy: RetryPolicy
    credentials: Credentials | None = None
    limit: asyncio.Semaphore | None = None
    limit_size: int | None = None
    renew_at: float = math.inf  # when a rotated-out secret stops signing: work it out again
    crm_answers: bool = True  # its 200 answers become the room's crmData


class Targets:
    """Each endpoint's `Target`, worked out again when its record changes."""

    def __init__(self, settings: Settings, directory: EndpointDirectory) -> None:
        self.settings, self.directory = settings, directory
        self.default = Target(policy_from(settings))
        self.unknown = Target(policy_from(settings), Credentials())
        self._known: dict[tuple[str | None, str], tuple[EndpointRecord, Target]] = {}

    def of(self, job: WebhookJob) -> Target:
        if job.endpoint_id is None:
            return self.default
        endpoint = self.directory.find(job.workspace, job.endpoint_id)
        key = (job.workspace, job.endpoint_id)
        known = self._known.get(key)
        if endpoint is None:
            # Removed: what was made for it still goes, with what it last had here, else
            # with no token and no signature; never with another endpoint's credentials.
            return known[1] if known is not None else self.unknown
        if not endpoint.created_at:
            return self.default  # the environment's own endpoint: the worker's settings
        now = time.time()
        if known is not None and known[0] is endpoint and now < known[1].renew_at:
            return known[1]
        target = self._target(endpoint, known[1] if known is not None else None, now)
        self._known[key] = (endpoint, target)
        return target

    def _target(self, endpoint: EndpointRecord, before: Target | None, now: float) -> Target:
        timeout_s = endpoint.timeout_ms / 1000 if endpoint.timeout_ms is not None else None
        credentials = Credentials.of(endpoint.token, signing_secrets(endpoint, now), timeout_s)
        ends = [parse_iso(s.expires_at) for s in endpoint.secrets if s.expires_at]
        size = endpoint.concurrency
        limit = None
        if size is not None:
            # the same semaphore while the size stands: POSTs in flight keep counting
            same = before is not None and before.limit_size == size
            limit = before.limit if same and before is not None else asyncio.Semaphore(size)
        return Target(policy_from(self.settings, endpoint), credentials, limit, size,
                      min((end for end in ends if end > now), default=math.inf),
                      endpoint.crm_answers)  # fmt: skip


def breaker_policy_from(settings: Settings) -> BreakerPolicy | None:
    if not settings.breaker:
        return None
    return BreakerPolicy(
        failure_ratio=settings.breaker_failure_ratio,
        min_jobs=settings.breaker_min_jobs,
        window_s=settings.breaker_window_s,
        cooldown_s=settings.breaker_cooldown_s,
        max_cooldown_s=settings.breaker_max_cooldown_s,
    )


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
            target = self.targets.of(job)
            async with target.limit or contextlib.nullcontext(), self.posts:
                metrics.IN_FLIGHT.inc()
                try:
                    answer = await self.client.post(job, credentials=target.credentials)
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
        self.gates.record(job.url, leave, job.delivery_id, endpoint_failed)
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
        log.warning("job %s (%s) dead-lettered: %s", job.delivery_id, job.type, decision.reason)

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


class DeliveryAgent:
    """Reads a jobs topic; each job in its own task, acknowledged in offset order."""

    def __init__(self, delivery: Delivery, name: str, wait_until_due: bool, pending: int) -> None:
        self.delivery = delivery
        self.name = name
        self.wait_until_due = wait_until_due
        self.fresh = not wait_until_due  # reads the jobs topic
        self.sink = InOrderSink(pending)
        self._tasks: set[asyncio.Task[None]] = set()
        # tasks waiting (for a due time or in an endpoint's line), by their partition
        self._waiting: dict[asyncio.Task[None], Any] = {}

    async def run(self, stream: StreamT[Any]) -> None:
        async for event in stream.noack().events():  # type: ignore[attr-defined]  # noack is on Stream, not StreamT
            entry = await self.sink.track(event)
            task = asyncio.create_task(
                self.handle(event, entry), name=f"{self.name}-{event.message.offset}"
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def drop_revoked(self, assigned: frozenset[Any]) -> int:
        """Stop waiting for jobs of partitions this worker no longer holds: their new owner
        reads them again from its committed offset, and two workers holding one job would
        both POST it when its endpoint closes. A POST already under way is left to finish."""
        dropped = 0
        for task, tp in list(self._waiting.items()):
            if tp not in assigned:
                task.cancel()
                dropped += 1
        self.sink.forget(lambda tp: tp not in assigned)
        return dropped

    async def let_go(self) -> list[Any]:
        """Faust is about to wait for every event it handed on (a rebalance, or the worker
        stopping), with no limit. A job only waiting (for its due time, its room's turn or
        its endpoint: minutes, when the endpoint is down) is let go, to be read again from
        the committed offset by whichever worker gets its partition; a POST under way
        finishes. Returns the events that will never be acknowledged."""
        # Polled: the agent may start one more job (the event it had in hand when a slot
        # freed), and it is let go too. A job still running at the deadline is given up as
        # well: its acknowledgement, if it finishes, no longer counts.
        deadline = time.monotonic() + self.delivery.settings.http_timeout_ms / 1000 + LET_GO_S
        while self._tasks and time.monotonic() < deadline:
            for task in list(self._waiting):
                task.cancel()
            await asyncio.wait(set(self._tasks), timeout=0.1)
        let_go = self.sink.let_go_all()
        if let_go:
            log.info("%s: let go of %d jobs waiting, read again after the rebalance",
                     self.name, len(let_go))  # fmt: skip
        return let_go

    async def handle(self, event: Any, entry: Entry) -> None:
        try:
            await self.deliver_one(event)
        except asyncio.CancelledError:
            # Shutting down: never finished, so neither this offset nor any after it in the
            # partition is committed; the job is read again after the restart.
            self.sink.abandon(entry)
            raise
        self.sink.finish(entry)

    async def leave_for(self, job: WebhookJob) -> Pass | None:
        """Leave to attempt `job`, or None to hold it (to the tail of the retries topic).

        Fresh jobs never wait here: an open endpoint's job is held at once. A retry waits
        for its due time, then in its endpoint's line for at most a lease."""
        gates, lines = self.delivery.gates, self.delivery.lines
        if self.fresh:
            if lines is not None and not await lines.wait_fresh(job):
                metrics.ORDER_PARKED.labels(job.type).inc()
                return None  # behind its room's earlier job, in the retries topic
            limit = self.delivery.targets.of(job).limit
            if limit is not None and limit.locked():
                # Its endpoint's own limit is full: waiting here would fill the jobs
                # partition's window and hold back every other endpoint.
                return None
            return _held_unless(gates.try_pass(job.url), job)
        if job.due_at:
            delay = parse_iso(job.due_at) - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
        if held_too_long(job, time.time(), self.delivery.settings.breaker_max_hold_s):
            return ALWAYS
        lease_s = self.delivery.settings.breaker_hold_lease_s
        if lines is not None:
            started = time.monotonic()
            if not await lines.wait_turn(job, lease_s):
                return None
            lease_s = max(lease_s - (time.monotonic() - started), MIN_GATE_WAIT_S)
        return _held_unless(await gates.wait_pass(job.url, lease_s), job)

    async def deliver_one(self, event: Any) -> None:
        try:
            job = WebhookJob.from_json(event.value)
        except (codec.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            await self.delivery.reject(event, f"not a webhook job: {type(exc).__name__}: {exc}")
            return
        await self.delivery.controls_loaded.wait()
        await self.delivery.endpoints_loaded.wait()
        job = self.delivery.retarget(job)
        lines = self.delivery.lines
        if lines is not None:
            lines.enter(job, self.fresh, event.message.tp)
        try:
            task = asyncio.current_task()
            assert task is not None
            self._waiting[task] = event.message.tp
            try:
                leave = await self.leave_for(job)
            finally:
                self._waiting.pop(task, None)
            if leave is None:
                await self.delivery.hold(job, self.fresh)
                return
            await self.delivery.settle(job, leave, self.fresh)
        except asyncio.CancelledError:
            if lines is not None:
                lines.step_out(job, self.fresh)  # read again from its uncommitted offset
            raise
        except Exception:  # not CancelledError (a BaseException): handled above
            # A bug, not a delivery failure. Left unacknowledged it would stall the
            # partition's commits forever: log it loudly and keep the job instead.
            log.exception("delivering %s[%d]@%d failed", event.message.topic,
                          event.message.partition, event.message.offset)  # fmt: skip
            await self.delivery.reject(event, INTERNAL_ERROR)
            if lines is not None:
                lines.leave(job)  # kept on the rejected topic: its room's next job goes


def _held_unless(leave: Pass | None, job: WebhookJob) -> Pass | None:
    if leave is None:
        metrics.HELD.labels(job.type).inc()
    return leave


class SettledExpiry:
    """Drops outcomes older than the retention from memory (the changelog drops them too)."""

    def __init__(self, app: Any, table: Any, settled: SettledJobs, retention_s: float) -> None:
        self.table, self.settled, self.retention_s = table, settled, retention_s
        self._assignment = AssignmentWatch(app)

    async def run(self) -> None:
        if self._assignment.changed():
            self.settled.reread()  # recovery brought the outcomes of newly assigned partitions
        forget_locally(self.table, self.settled.expired(time.time(), self.retention_s))


def http_client_service(delivery: Delivery) -> type[mode.Service]:
    """The service that opens the pooled HTTP session with the worker, closes it on stop."""

    class HttpClientService(mode.Service):
        async def on_start(self) -> None:
            await delivery.client.start()

        async def on_stop(self) -> None:
            await delivery.client.close()
            delivery.failures.flush(everything=True)

    return HttpClientService


def add_endpoints_page(app: Any, gates: EndpointGates) -> None:
    """GET /endpoints: this worker's breaker per endpoint, for `omnihooks endpoints status`."""

    async def endpoints_page(view: Any, request: Any) -> Any:
        return view.json({"endpoints": [asdict(status) for status in gates.statuses()]})

    app.page("/endpoints")(endpoints_page)


def register_delivery_agents(omnihooks: Omnihooks) -> WebhookClient:
    """Add the deliver and retry agents, their table and timers to the app."""
    app, settings, topics = omnihooks.app, omnihooks.settings, omnihooks.topics
    settled: SettledJobs | None = None
    if settings.settled_retention_s > 0:
        retention_ms = str(int(settings.settled_retention_s * 1000))
        table = bytes_table(
            app,
            "settled-jobs",
            omnihooks.catalogue[Topic.WEBHOOK_JOBS].partitions,
            "outcome per delivery id, so a job read twice is POSTed once",
            {"cleanup.policy": "compact,delete", "retention.ms": retention_ms},
        )
        settled = SettledJobs(DirectTable(app, table))
        expiry = SettledExpiry(app, table, settled, settings.settled_retention_s)
        app.timer(interval=30.0, name="settled-jobs-expiry")(expiry.run)
    lines: RoomLines | None = None
    if settings.delivery_order == "room":
        order_table = bytes_table(
            app,
            "delivery-order",
            omnihooks.catalogue[Topic.WEBHOOK_JOBS].partitions,
            "per room and endpoint, the webhook numbers of jobs waiting in the retries topic",
            {"cleanup.policy": "compact"},
        )
        # Every parked job is read again at least once a hold lease (streams/room_lines.py).
        stale_after_s = 2 * settings.breaker_hold_lease_s + 60
        lines = RoomLines(DirectTable(app, order_table), stale_after_s)
        metrics.ORDER_WAITING.set_function(lambda: lines.waiting if lines else 0)
    delivery = Delivery(omnihooks, WebhookClient(settings), settled, lines)
    concurrency = settings.delivery_concurrency
    deliver = DeliveryAgent(delivery, "deliver", wait_until_due=False, pending=concurrency * 4)
    # A retry waits in its task; allow many such waits before pausing the retries topic.
    retry = DeliveryAgent(delivery, "retry", wait_until_due=True, pending=concurrency * 64)
    app.agent(topics[Topic.WEBHOOK_JOBS], name="deliver")(deliver.run)
    app.agent(topics[Topic.WEBHOOK_RETRIES], name="retry")(retry.run)
    app.service(http_client_service(delivery))
    add_endpoints_page(app, delivery.gates)
    app.service(follower_service(settings, delivery.controls_topic,
                                 delivery.controls_partitions, delivery.apply_control,
                                 delivery.controls_loaded))  # fmt: skip

    async def let_go() -> list[Any]:
        return [*await deliver.let_go(), *await retry.let_go()]

    let_go_before_waiting(app, let_go)
    assignment = AssignmentWatch(app)

    async def drop_revoked_waits() -> None:
        if assignment.changed():
            consumer: Any = app.consumer
            assigned = frozenset(consumer.assignment())
            dropped = deliver.drop_revoked(assigned) + retry.drop_revoked(assigned)
            if delivery.lines is not None:
                delivery.lines.forget(lambda tp: tp not in assigned)
            if dropped:
                log.info("partitions revoked: stopped waiting for %d jobs", dropped)

    app.timer(interval=1.0, name="drop-revoked-waits")(drop_revoked_waits)

    async def summarize_failed_attempts() -> None:
        delivery.failures.flush()

    app.timer(interval=1.0, name="failed-attempts-summary")(summarize_failed_attempts)
    return delivery.client

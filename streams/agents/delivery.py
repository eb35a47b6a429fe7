"""The delivery agents: `deliver` reads fresh jobs, `retry` reads jobs waiting for their next
attempt and waits for each due time in its own task, so a job waiting never blocks another
job, room or partition. Each job runs in its own task (bounded) and is settled by the
`Delivery` sink (streams/delivery/sink.py); events are acknowledged in offset order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict
from typing import Any

import mode
from faust.types import StreamT

from streams import metrics
from streams.agents.alerts import register_alert_agents
from streams.agents.tables import TableSpec, delivery_order, settled_jobs
from streams.app import AssignmentWatch, Omnihooks
from streams.core.breaker import Pass
from streams.core.clock import parse_iso
from streams.core.erasure import ERASE_NOTICE
from streams.core.retry import held_too_long
from streams.delivery.endpoint_gates import ALWAYS, EndpointGates
from streams.delivery.room_lines import RoomLines
from streams.delivery.settled import SettledJobs
from streams.delivery.sink import Delivery
from streams.delivery.webhook_client import WebhookClient
from streams.engine import DirectTable, bytes_table, forget_locally, let_go_before_waiting
from streams.engine.followers import follower_service
from streams.engine.sink import Entry, InOrderSink
from topics import codec
from topics.catalogue import Topic
from topics.records import WebhookJob

log = logging.getLogger(__name__)

INTERNAL_ERROR = "internal error while delivering; see the worker log"
# A retry whose room's earlier jobs took its whole lease still gets this long at its gate.
MIN_GATE_WAIT_S = 1.0
# Before a rebalance, POSTs under way get their HTTP timeout and this long to finish (the
# outcome's produce), then the rebalance goes on without them.
LET_GO_S = 5.0


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
        if job.type == ERASE_NOTICE:
            if self.delivery.lines is not None and job.room_id:
                self.delivery.lines.erase_room(job.room_id)
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
                while True:
                    leave = await self.leave_for(job)
                    if leave is None:
                        break
                    # Its endpoint may have moved while it waited (its due time, its turn):
                    # it goes where the endpoint is now, through that URL's own gate.
                    now_at = self.delivery.retarget(job)
                    if now_at.url == job.url:
                        break
                    self.delivery.gates.release(job.url, leave)
                    job = now_at
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

    def table(spec: TableSpec) -> Any:
        partitions = omnihooks.catalogue[spec.partitions_of].partitions
        return bytes_table(app, spec.name, partitions, spec.help, spec.config)

    settled: SettledJobs | None = None
    settled_spec = settled_jobs(settings)
    if settled_spec is not None:
        table_ = table(settled_spec)
        settled = SettledJobs(DirectTable(app, table_))
        expiry = SettledExpiry(app, table_, settled, settings.settled_retention_s)
        app.timer(interval=30.0, name="settled-jobs-expiry")(expiry.run)
    lines: RoomLines | None = None
    order_spec = delivery_order(settings)
    if order_spec is not None:
        order_table = table(order_spec)
        # Every parked job is read again at least once a hold lease
        # (streams/delivery/room_lines.py).
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
    register_alert_agents(omnihooks, delivery.health)
    return delivery.client

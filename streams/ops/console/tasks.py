"""Replays and purges asked for on the console: what was confirmed, and its progress.

A confirmation page names exactly the entries it will act on; they are kept here under a
one-time id (with who asked and where to), so the confirmed action acts on those entries
and no others, however the dead letters changed in between, and the page never carries
the target URL's query string back. Tasks run in their own threads, so a long replay never
slows the pages, and an entry in a running task is not taken by a second one.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from streams.core.endpoints import endpoint_label
from streams.ops.console.pages import Task
from streams.ops.dead_letters import DeadLetterTopic, Entry

log = logging.getLogger("omnihooks.console")

FLUSH_EVERY = 50  # records written between waits for the brokers' acknowledgement
KEPT_TASKS = 100
PENDING_S = 600.0
LOGGED_IDS = 100  # delivery ids per log line


@dataclass(frozen=True)
class Pending:
    """A confirmation shown and not yet answered."""

    who: str
    action: str
    entry_ids: frozenset[str]
    target: str | None
    force: bool
    expires_at: float


@dataclass
class Tasks:
    topic: Callable[[], DeadLetterTopic]
    tasks: dict[str, Task] = field(default_factory=dict)
    busy: set[str] = field(default_factory=set)  # entry ids of running tasks
    _pending: dict[str, Pending] = field(default_factory=dict)
    _threads: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(2, thread_name_prefix="console-task")
    )

    def hold(self, pending: Pending) -> str:
        now = time.time()
        self._pending = {k: p for k, p in self._pending.items() if p.expires_at > now}
        pending_id = secrets.token_urlsafe(16)
        self._pending[pending_id] = pending
        return pending_id

    def take(self, pending_id: str, who: str) -> Pending | None:
        """The confirmation, once, for the one who was shown it."""
        pending = self._pending.get(pending_id)
        if pending is None or pending.who != who or pending.expires_at <= time.time():
            return None
        del self._pending[pending_id]
        return pending

    def start(self, action: str, who: str, entries: Sequence[Entry], target: str | None) -> Task:
        task = Task(secrets.token_hex(6), action, who, len(entries), target)
        self.tasks[task.task_id] = task
        finished = [k for k, t in self.tasks.items() if t.state != "running"]
        for task_id in finished[: max(0, len(self.tasks) - KEPT_TASKS)]:
            del self.tasks[task_id]
        ids = [e.entry_id for e in entries]
        self.busy.update(ids)
        where = f" to {endpoint_label(target)}" if target else ""
        log.info(
            "console: %s asked to %s %d dead letters%s (task %s)",
            who,
            action,
            len(entries),
            where,
            task.task_id,
        )
        for first in range(0, len(ids), LOGGED_IDS):
            log.info(
                "console: task %s entries: %s",
                task.task_id,
                " ".join(ids[first : first + LOGGED_IDS]),
            )
        self._threads.submit(self._run, task, list(entries))
        return task

    def _run(self, task: Task, entries: list[Entry]) -> None:
        topic = self.topic()
        sent = 0
        try:
            for entry in entries:
                if task.action == "replay":
                    topic.replay(entry, task.target)
                else:
                    topic.purge(entry)
                sent += 1
                if sent % FLUSH_EVERY == 0:
                    topic.flush()
                    task.done = sent  # acknowledged by the brokers
            topic.flush()
            task.done, task.state = sent, "done"
            log.info(
                "console: task %s done: %s %s %d dead letters",
                task.task_id,
                task.who,
                "replayed" if task.action == "replay" else "purged",
                task.done,
            )
        except Exception as exc:  # shown on the task's page and logged; the console goes on
            task.state, task.error = "failed", f"{type(exc).__name__}: {exc}"
            try:
                topic.flush()  # what was handed to the producer, acknowledged or an error
                task.done = sent
            except Exception:  # the count stays at the last acknowledged
                pass
            log.error(
                "console: task %s failed; the first %d were acknowledged: %s",
                task.task_id,
                task.done,
                exc,
            )
        finally:
            self.busy.difference_update(e.entry_id for e in entries)

    def close(self) -> None:
        self._threads.shutdown(wait=True, cancel_futures=False)

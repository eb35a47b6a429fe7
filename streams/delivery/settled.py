"""Which jobs are settled already, so a job read twice is POSTed once.

A job reaches the delivery agents twice after a crash: a session record read again re-emits
its jobs (same delivery ids), and a delivery worker killed reads again the jobs past its last
commit, POSTed or not. Each job's outcome is written to a changelog-backed table when it
settles (delivered, scheduled for retry, dead-lettered), keyed by its delivery id (and replay
id, so an operator's replay is a new job); a job already settled is finished without a POST.
What is still sent twice: the POSTs in flight at the crash, whose outcome was not written,
and those settled in the last moments before it, whose outcome was still being batched for
the changelog (`STATE_LINGER_MS`, 50 ms). The stress runs count both
(bench/results/stress-*.txt).

Entries are kept `retention_s` (the time within which a crash's repeats arrive), then dropped
from memory; the changelog forgets them by time too (`cleanup.policy=compact,delete`).

Pure: any `MutableMapping[bytes, bytes]` is the table.
"""

from __future__ import annotations

from collections import deque
from collections.abc import MutableMapping

from topics.records import WebhookJob
from topics.state import Outcome


def settled_key(job: WebhookJob) -> bytes:
    key = job.delivery_id if job.replay_id is None else f"{job.delivery_id}/{job.replay_id}"
    return key.encode()


class SettledJobs:
    def __init__(self, table: MutableMapping[bytes, bytes]) -> None:
        self._table = table
        self._in_flight: set[bytes] = set()
        # Settle order, for expiry without scanning the table; entries recovered from the
        # changelog are read once, on the first expiry.
        self._by_age: deque[tuple[float, bytes]] = deque()
        self._recovered_read = False

    def outcome(self, job: WebhookJob) -> Outcome | None:
        return self._outcome_of(settled_key(job))

    def _outcome_of(self, key: bytes) -> Outcome | None:
        raw = self._table.get(key)
        return None if raw is None else Outcome.from_json(raw)

    def begin(self, job: WebhookJob) -> bool:
        """True when `job` is to be attempted now; False when it was settled already (or the
        same attempt is in flight): the caller finishes it without a POST."""
        key = settled_key(job)
        if key in self._in_flight:
            return False
        outcome = self._outcome_of(key)
        if outcome is not None and (outcome.final or outcome.attempts > len(job.attempts)):
            return False
        self._in_flight.add(key)
        return True

    def settle(self, job: WebhookJob, attempts: int, final: bool, now: float) -> None:
        """Write the outcome, once whatever it sent (retry, dead letter, crm-data) is safe."""
        key = settled_key(job)
        self._table[key] = Outcome(now, attempts, final).to_json()
        self._in_flight.discard(key)
        self._by_age.append((now, key))

    def end(self, job: WebhookJob) -> None:
        """The attempt stopped without an outcome (shutting down, or a bug): not settled."""
        self._in_flight.discard(settled_key(job))

    def reread(self) -> None:
        """The table gained entries from a changelog (partitions assigned): read their ages
        on the next expiry."""
        self._recovered_read = False

    def expired(self, now: float, retention_s: float) -> list[bytes]:
        """Keys settled more than `retention_s` ago: the caller drops them from memory."""
        cutoff = now - retention_s
        if not self._recovered_read:
            self._recovered_read = True
            known = {key for _, key in self._by_age}
            recovered = [(Outcome.from_json(raw).at, key) for key, raw in list(self._table.items())
                         if key not in known]  # fmt: skip
            self._by_age = deque(sorted([*recovered, *self._by_age]))
        expired = []
        while self._by_age and self._by_age[0][0] < cutoff:
            at, key = self._by_age.popleft()
            raw = self._table.get(key)
            # A key settled again later (a retry's next outcome) is dropped with its last entry.
            if raw is not None and Outcome.from_json(raw).at == at:
                expired.append(key)
        return expired

"""Dead-letter reprocessing (`omnihooks dlq`): read, filter, replay and purge dead letters.

The dead-letter topic is append-only (keyed by room, so compaction could not remove one
entry among a room's). What operators do to an entry is recorded beside it, in the compacted
`webhook-dead-letter-marks` topic keyed by entry and action: `list` hides purged entries and
`replay` skips replayed ones, so running the same replay twice sends nothing twice. Nothing
here joins a consumer group: partitions are assigned and read to their end, so the workers'
offsets are never touched.
"""

from __future__ import annotations

import re
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, get_args

import msgspec

from streams.core.clock import iso, parse_iso
from streams.core.payloads import PayloadType
from streams.engine.kafka import KafkaConfig, Writer, read_all
from topics import codec
from topics.catalogue import Topic
from topics.records import DeadLetter

if TYPE_CHECKING:
    from streams.settings import Settings

# Every webhook type a job can have: the session and message payloads, and offline messages.
WEBHOOK_TYPES: tuple[str, ...] = (*get_args(PayloadType), "LivechatOfflineMessage")

RELATIVE_AGE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class FilterError(ValueError):
    """A filter value that cannot be understood (a usage error: exit 2)."""


@dataclass(frozen=True)
class Entry:
    """One dead letter as read from its topic, with what operators did to it."""

    partition: int
    offset: int
    letter: DeadLetter
    replayed: bool = False
    purged: bool = False

    @property
    def entry_id(self) -> str:
        return f"{self.letter.job.delivery_id}@{self.partition}:{self.offset}"

    @property
    def last_outcome(self) -> str:
        if not self.letter.attempts:
            return "-"
        last = self.letter.attempts[-1]
        return str(last.status) if last.status is not None else str(last.error)

    def summary(self) -> dict[str, Any]:
        job = self.letter.job
        return {
            "id": job.delivery_id,
            "entry": self.entry_id,
            "room": job.room_id,
            "type": job.type,
            "url": job.url,
            "workspace": job.workspace or "default",
            "endpoint": job.endpoint_id or "default",
            "attempts": len(self.letter.attempts),
            "last": self.last_outcome,
            "dead_lettered_at": self.letter.dead_lettered_at,
            "replayed": self.replayed,
            "reason": self.letter.reason,
        }


@dataclass(frozen=True)
class Filters:
    since: float | None = None
    until: float | None = None
    types: frozenset[str] = frozenset()
    room: str | None = None
    url: str | None = None
    status: str | None = None
    ids: frozenset[str] = frozenset()
    endpoint: str | None = None  # the job's endpoint id ("default": the environment's)
    workspace: str | None = None  # the job's workspace ("default": none given)

    @property
    def is_empty(self) -> bool:
        return self == Filters()

    def matches(self, entry: Entry) -> bool:
        letter, job = entry.letter, entry.letter.job
        if self.ids and job.delivery_id not in self.ids and entry.entry_id not in self.ids:
            return False
        at = parse_iso(letter.dead_lettered_at)
        if self.since is not None and at < self.since:
            return False
        if self.until is not None and at > self.until:
            return False
        if self.types and job.type not in self.types:
            return False
        if self.room is not None and job.room_id != self.room:
            return False
        if self.url is not None and self.url not in job.url:
            return False
        if self.endpoint is not None and (job.endpoint_id or "default") != self.endpoint:
            return False
        if self.workspace is not None and (job.workspace or "default") != self.workspace:
            return False
        return self.status is None or _status_matches(entry, self.status)


def _status_matches(entry: Entry, wanted: str) -> bool:
    """`--status 500`, `--status 5xx`, or an error word such as `timeout`."""
    if not entry.letter.attempts:
        return False
    last = entry.letter.attempts[-1]
    if re.fullmatch(r"\d{3}", wanted):
        return last.status == int(wanted)
    if re.fullmatch(r"[1-5]xx", wanted):
        return last.status is not None and last.status // 100 == int(wanted[0])
    return last.error is not None and wanted.lower() in last.error.lower()


def parse_time(text: str, now: float, flag: str) -> float:
    """ISO 8601 (`2023-02-02T10:00:00Z`) or an age before now (`90s`, `30m`, `2h`, `7d`)."""
    match = RELATIVE_AGE.match(text.strip())
    if match:
        return now - float(match.group(1)) * UNITS[match.group(2)]
    try:
        return parse_iso(text)
    except ValueError:
        raise FilterError(
            f"{flag} {text!r} is neither an ISO 8601 time nor an age such as 2h or 30m"
        ) from None


def build_filters(
    *,
    since: str | None,
    until: str | None,
    types: Iterable[str],
    room: str | None,
    url: str | None,
    status: str | None,
    ids: Iterable[str] = (),
    now: float | None = None,
    endpoint: str | None = None,
    workspace: str | None = None,
) -> Filters:
    now = time.time() if now is None else now
    if status is not None and not re.fullmatch(r"\d{3}|[1-5]xx|[A-Za-z][\w :-]*", status):
        raise FilterError(f"--status {status!r}: give a code (500), a class (5xx) or an error word")
    known = set(WEBHOOK_TYPES)
    unknown = set(types) - known
    if unknown:
        raise FilterError(f"--type {sorted(unknown)} unknown; one of {sorted(known)}")
    filters = Filters(
        since=parse_time(since, now, "--since") if since else None,
        until=parse_time(until, now, "--until") if until else None,
        types=frozenset(types),
        room=room,
        url=url,
        status=status,
        ids=frozenset(ids),
        endpoint=endpoint,
        workspace=workspace,
    )
    if filters.since is not None and filters.until is not None and filters.since > filters.until:
        raise FilterError("--since is after --until")
    return filters


# -- the Kafka side -------------------------------------------------------------------------


@dataclass
class DeadLetterTopic:
    """Reads the dead letters and their marks; writes replays and marks."""

    kafka: KafkaConfig
    dead_letters: str
    marks: str
    jobs: str
    _writer: Writer | None = field(default=None, repr=False)

    @classmethod
    def of(cls, settings: Settings) -> DeadLetterTopic:
        """The dead letters, their marks and the jobs topic under the settings' prefix."""
        prefix = settings.topic_prefix
        return cls(
            KafkaConfig.of(settings),
            dead_letters=f"{prefix}{Topic.WEBHOOK_DEAD_LETTERS.value}",
            marks=f"{prefix}{Topic.WEBHOOK_DEAD_LETTER_MARKS.value}",
            jobs=f"{prefix}{Topic.WEBHOOK_JOBS.value}",
        )

    def entries(self) -> list[Entry]:
        """Every dead letter with its marks, oldest first."""
        marks: dict[str, dict[str, Any]] = {}
        for message in read_all(self.kafka, self.marks):
            key = message.key().decode()
            if message.value() is None:
                marks.pop(key, None)
            else:
                marks[key] = codec.loads(message.value())
        entries = []
        for message in read_all(self.kafka, self.dead_letters):
            try:
                letter = DeadLetter.from_json(message.value())
            except (codec.JSONDecodeError, KeyError, TypeError, ValueError):
                continue  # not ours to judge here; the topic only holds what workers wrote
            entry = Entry(message.partition(), message.offset(), letter)
            if f"{entry.entry_id}/erased" in marks:
                continue  # a visitor's erasure: never listed, shown, replayed or counted
            entries.append(
                replace(
                    entry,
                    replayed=f"{entry.entry_id}/replayed" in marks,
                    purged=f"{entry.entry_id}/purged" in marks,
                )
            )
        entries.sort(key=lambda e: (e.letter.dead_lettered_at, e.partition, e.offset))
        return entries

    def _produce(self, topic: str, key: bytes, value: bytes) -> None:
        if self._writer is None:
            self._writer = Writer(self.kafka)
        self._writer.write(topic, key, value)

    def flush(self) -> None:
        """Return once every replay and mark is on the brokers; KafkaWriteError if any was
        refused (a missing ACL) or not acknowledged."""
        if self._writer is not None:
            self._writer.flush()

    def replay(self, entry: Entry, url: str | None) -> str:
        """Re-enqueue the job with a fresh attempt budget and the same delivery id."""
        replay_id = str(uuid.uuid4())
        job = msgspec.structs.replace(
            entry.letter.job,
            attempts=(),
            due_at=None,
            url=url or entry.letter.job.url,
            url_pinned=url is not None or entry.letter.job.url_pinned,
            replay_id=replay_id,
        )
        self._produce(self.jobs, job.key(), job.to_json())
        mark = {
            "action": "replayed",
            "replay_id": replay_id,
            "at": iso(time.time()),
            "url": job.url,
        }
        self._produce(self.marks, f"{entry.entry_id}/replayed".encode(), codec.dumps(mark))
        return replay_id

    def erase(self, entry: Entry) -> None:
        """Mark the entry erased (`omnihooks erase`): gone from every view and replay; its
        bytes age out with the dead-letter topic's retention."""
        mark = {"action": "erased", "at": iso(time.time())}
        self._produce(self.marks, f"{entry.entry_id}/erased".encode(), codec.dumps(mark))

    def purge(self, entry: Entry) -> None:
        mark = {"action": "purged", "at": iso(time.time())}
        self._produce(self.marks, f"{entry.entry_id}/purged".encode(), codec.dumps(mark))


def table(entries: list[Entry]) -> str:
    """The `list` table: room, type, delivery id, URL, attempts, last status, dead-lettered at."""
    header = ("ROOM", "TYPE", "DELIVERY ID", "URL", "ATTEMPTS", "LAST", "DEAD-LETTERED AT")
    rows = [header]
    for entry in entries:
        job = entry.letter.job
        rows.append(
            (
                job.room_id or "-",
                job.type,
                job.delivery_id + (" (replayed)" if entry.replayed else ""),
                job.url,
                str(len(entry.letter.attempts)),
                entry.last_outcome,
                entry.letter.dead_lettered_at,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in rows)  # fmt: skip


def progress(done: int, total: int, out: Callable[[str], Any] = sys.stderr.write) -> None:
    """A one-line progress bar on stderr for large replays."""
    if total < 50:
        return
    width = 30
    filled = width * done // total
    out(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    if done == total:
        out("\n")

"""Test harness: real worker processes (`omnihooks worker`), topic readers, a real HTTP receiver."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
from pydantic import SecretStr

from streams.agents.tables import ROLES
from streams.engine import kafka
from streams.engine.kafka import KafkaConfig
from streams.ops.topic_admin import apply_topics, changelogs, changelogs_of_app
from streams.settings import Settings, env_name
from topics import codec
from topics.catalogue import load_catalogue


def wait_until(done: Callable[[], bool], timeout_s: float, failure: Callable[[], str]) -> None:
    """Poll `done` every 0.1 s; after `timeout_s` fail with what `failure` says then."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if done():
            return
        time.sleep(0.1)
    raise AssertionError(failure())


def free_port() -> int:
    """A loopback port nothing listens on (closed again when this returns)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a worker process read exactly these settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OMNIHOOKS_", "KAFKA_"))
    }
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, bool):
            value = "true" if value else "false"
        env[env_name(name)] = str(value)
    return env


def omnihooks_cli(
    settings: Settings | None, *args: str, timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    """`omnihooks ARGS` in its own process, reading exactly `settings` (or the environment)."""
    return subprocess.run(
        [sys.executable, "-m", "streams.ops.cli", *args],
        env=settings_env(settings) if settings is not None else None,
        capture_output=True, text=True, timeout=timeout_s, check=False,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


@dataclass
class WorkerProcess:
    """One `omnihooks worker` subprocess with its log in a file."""

    settings: Settings
    role: str
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    # False: start it as is, its changelogs not made first (a worker meant to be refused)
    make_changelogs: bool = True

    def argv(self) -> list[str]:
        return ["worker", "--role", self.role]

    def start(self) -> WorkerProcess:
        if self.make_changelogs:
            create_changelogs(self.settings, self.role)  # as `omnihooks topics apply` would
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streams.ops.cli", *self.argv()],
            env=settings_env(self.settings),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 60.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(10)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, text: str, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if text in self.log():
                return
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"worker exited ({self.process.returncode}):\n{self.tail()}")
            time.sleep(0.2)
        raise AssertionError(f"worker never logged {text!r}:\n{self.tail()}")

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-lines:])


@dataclass
class TopicReader:
    """Reads a topic from the beginning (all partitions assigned, no group offsets used)."""

    bootstrap: str
    topic: str
    records: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"reader-{self.topic}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            }
        )
        metadata = self._consumer.list_topics(self.topic, timeout=10)
        partitions = metadata.topics[self.topic].partitions
        self._consumer.assign([TopicPartition(self.topic, p, 0) for p in partitions])

    def poll(self, timeout_s: float = 0.5) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            message = self._consumer.poll(0.1)
            if message is None:
                continue
            if message.error():
                continue
            self.records.append(message)

    def values(self) -> list[Any]:
        return [codec.loads(record.value()) for record in self.records]

    def wait_for(
        self, count: int, timeout_s: float = 60.0, where: Callable[[Any], bool] = lambda v: True
    ) -> list[Any]:
        """At least `count` decoded values matching `where`, or an AssertionError."""
        deadline = time.monotonic() + timeout_s
        while True:
            matching = [value for value in self.values() if where(value)]
            if len(matching) >= count or time.monotonic() > deadline:
                break
            self.poll(0.5)
        assert len(matching) >= count, f"{len(matching)} of {count} records on {self.topic}"
        return matching

    def settle(self, quiet_s: float = 3.0) -> list[Any]:
        """Everything, once nothing new has arrived for `quiet_s`."""
        seen = -1
        while seen != len(self.records):
            seen = len(self.records)
            self.poll(quiet_s)
        return self.values()

    def close(self) -> None:
        self._consumer.close()


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """Each partition's high watermark of `topic` now."""
    reader = kafka.reader(KafkaConfig(bootstrap))
    try:
        partitions = reader.list_topics(topic, timeout=15).topics[topic].partitions
        return {p: kafka.watermarks(reader, TopicPartition(topic, p))[1] for p in partitions}
    finally:
        reader.close()


def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    admin = kafka.admin(KafkaConfig(bootstrap))
    request = [ConsumerGroupTopicPartitions(group)]
    found: dict[int, int] = {}
    for future in admin.list_consumer_group_offsets(request, request_timeout=15).values():
        for tp in future.result().topic_partitions or []:
            if tp.topic == topic and tp.offset >= 0:
                found[tp.partition] = tp.offset
    return found


def wait_committed(bootstrap: str, group: str, topics: list[str], timeout_s: float = 60) -> None:
    """Wait until `group` has committed every record each topic holds, taken in order: jobs
    an input made are on the jobs topic once the input is committed, so the jobs topic's
    end is read after. Once a worker committed a record it is done with it: nothing it
    would still send for it. The event a test waits on instead of a quiet period."""
    for topic in topics:
        ends = end_offsets(bootstrap, topic)

        def caught_up(topic: str = topic, ends: dict[int, int] = ends) -> bool:
            done = committed_offsets(bootstrap, group, topic)
            return all(done.get(p, 0) >= end for p, end in ends.items() if end > 0)

        wait_until(caught_up, timeout_s, lambda t=topic: f"{group} did not commit {t} to its end")


def pipeline_topics(settings: Settings) -> list[str]:
    """A worker's topics in the order records flow through them (for `wait_committed`)."""
    prefix = settings.topic_prefix
    return [f"{prefix}{name}" for name in
            ("rooms", "messages", "rocketchat-webhooks", "webhook-jobs", "webhook-retries")]  # fmt: skip


def create_changelogs(settings: Settings, role: str) -> None:
    """The changelog topics of a role's tables, if missing: an admin's `topics apply --role`
    creates them before a worker starts, never the worker."""
    if role not in ROLES:
        return
    wanted = changelogs(settings, load_catalogue(settings.partitions), [role])  # type: ignore[list-item]
    config = KafkaConfig.of(settings)
    missing = set(kafka.missing_topics(config, [topic.name for topic in wanted]))
    if missing:
        apply_topics(config, [topic for topic in wanted if topic.name in missing], 30.0)


def create_changelogs_of(app: Any, bootstrap: str) -> None:
    """The same for an app a test builds with tables of its own."""
    apply_topics(KafkaConfig(bootstrap), changelogs_of_app(app), 30.0)

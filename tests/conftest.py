"""Shared fixtures: a real Kafka broker for the whole session, uuid-named topics per test.

The broker is, in order: `KAFKA_BOOTSTRAP_SERVERS` when set; a testcontainers Kafka when a
Docker engine answers; else the project's own local broker (`omnihooks kafka up`) on a test
port. When none can be had the tests fail with the reason: they never skip.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from streams.dev.local_kafka import LocalKafka, metadata_answers
from streams.ops.topic_admin import apply_catalogue
from streams.settings import Settings, load_settings
from tests.support.files import REPO
from tests.support.harness import TopicReader, WorkerProcess
from tests.support.receiver import Receiver
from topics.catalogue import Topic, load_catalogue

TEST_KAFKA_PORT = int(os.environ.get("OMNIHOOKS_TEST_KAFKA_PORT", "19092"))
TEST_PARTITIONS = 4


@dataclass(frozen=True)
class Broker:
    bootstrap: str
    origin: str


def _docker_answers() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        done = subprocess.run([docker, "info"], capture_output=True, timeout=10, check=False)
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def local_kafka_for_tests(port: int = TEST_KAFKA_PORT) -> LocalKafka:
    """The project's own broker on a test port, so a user's broker on 9092 is left alone."""
    return LocalKafka.configured(kafka_port=port)


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    given = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if given:
        if not metadata_answers(given, 15.0):
            pytest.fail(f"KAFKA_BOOTSTRAP_SERVERS={given} does not answer a metadata request")
        yield Broker(given, "KAFKA_BOOTSTRAP_SERVERS")
        return
    if _docker_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer("apache/kafka:4.1.1").with_kraft() as container:
            yield Broker(container.get_bootstrap_server(), "testcontainers")
        return
    # One local broker for every test process (pytest-xdist runs several): the first to
    # need it starts it, the others wait for it; the run's main process stops it at the end.
    local = local_kafka_for_tests()
    with exclusive(local.home / f"tests-{local.port}.lock"):
        try:
            if local.running_pid() is None:
                local.up(timeout_s=120, fresh=True)
                (run_dir(tmp_path_factory) / STARTED_BROKER).write_text(str(local.port))
            else:
                local.up(timeout_s=120)  # running: wait until it answers
        except Exception as exc:
            pytest.fail(f"the local Kafka broker could not start: {exc}", pytrace=False)
    yield Broker(local.bootstrap, f"local broker (pid {local.running_pid()})")


STARTED_BROKER = "started-local-broker"


@contextmanager
def exclusive(lock_file: Path) -> Iterator[None]:
    """Held by one test process at a time (an advisory lock, released if a process dies)."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The temporary directory of the whole run: under xdist each worker's is inside it."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if is_xdist_worker(config):
        config.workeroutput["omnihooks_summary"] = SUMMARY  # type: ignore[attr-defined]
        return
    started = config._tmp_path_factory.getbasetemp() / STARTED_BROKER  # type: ignore[attr-defined]
    if started.exists():
        local_kafka_for_tests(int(started.read_text())).down()


def pytest_testnodedown(node: Any, error: Any) -> None:
    """A pytest-xdist worker ended: its measurements join the run's summary."""
    SUMMARY.extend(getattr(node, "workeroutput", {}).get("omnihooks_summary", []))


@pytest.fixture
def topic_prefix() -> str:
    """A fresh prefix so each test has its own topics and consumer groups."""
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture
def settings_factory(kafka: Broker, topic_prefix: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Settings bound to the test broker and topics; keyword overrides win."""

    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "kafka_bootstrap_servers": kafka.bootstrap,
            "topic_prefix": topic_prefix,
            "app_id": f"omnihooks-{topic_prefix.rstrip('.')}",
            "partitions": TEST_PARTITIONS,
            "data_dir": tmp_path / "worker",
            "web_enabled": False,
        }
        values.update(overrides)
        return load_settings(**values)

    return make


@pytest.fixture
def applied_topics(settings_factory) -> dict[Topic, str]:  # type: ignore[no-untyped-def]
    """The catalogue's topics, created under this test's prefix."""
    settings: Settings = settings_factory()
    catalogue = load_catalogue(settings.partitions)
    apply_catalogue(settings.kafka_bootstrap_servers, catalogue, settings.topic_prefix)
    return catalogue.names(settings.topic_prefix)


def pytest_report_header(config: pytest.Config) -> str:
    return f"omnihooks repo: {REPO}"


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start `omnihooks worker` subprocesses; all are stopped when the test ends."""
    workers: list[WorkerProcess] = []

    def start(settings: Settings, role: str = "all") -> WorkerProcess:
        log_path = tmp_path / f"worker-{len(workers)}-{role}.log"
        worker = WorkerProcess(settings, role, log_path).start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()
        # Shown by pytest only when the test failed.
        print(f"--- {worker.log_path.name} ---\n{worker.tail(40)}")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real HTTP receiver on 127.0.0.1 (see tests/receiver.py for its paths)."""
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def read_topic(kafka: Broker) -> Iterator[Callable[[str], TopicReader]]:
    readers: list[TopicReader] = []

    def open_reader(topic: str) -> TopicReader:
        reader = TopicReader(kafka.bootstrap, topic)
        readers.append(reader)
        return reader

    yield open_reader
    for reader in readers:
        reader.close()


SUMMARY: list[str] = []


@pytest.fixture
def report() -> Callable[[str], None]:
    """Lines for the end of the run (figures a test measured: rebalance pauses, counts)."""
    return SUMMARY.append


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if SUMMARY:
        terminalreporter.section("omnihooks measurements")
        for line in SUMMARY:
            terminalreporter.write_line(line)

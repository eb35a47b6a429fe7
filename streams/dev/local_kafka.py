"""The embedded default broker: one real Apache Kafka node in KRaft mode, run from Maven's jars.

The jars are `org.apache.kafka:kafka_2.13` and its dependencies (the classes the Kafka tarball
ships), resolved by `deploy/local/pom.xml` into a git-ignored cache. `up` formats the storage
once, starts a combined broker+controller on 127.0.0.1, and waits until it answers a metadata
request; `down` stops it with SIGTERM (a clean controlled shutdown) and SIGKILL only as a last
resort.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.dev.broker_security import HOST, BrokerSecurity
from streams.engine import kafka
from streams.engine.kafka import KafkaConfig

# A development tool, run from a source checkout: the jars' recipe sits beside the code.
SOURCE_TREE = Path(__file__).resolve().parents[2]
POM = SOURCE_TREE / "deploy" / "local" / "pom.xml"
LOG4J_CONFIG = SOURCE_TREE / "deploy" / "local" / "log4j2.properties"


class LocalKafkaSettings(BaseSettings):
    """The embedded broker's own settings (`OMNIHOOKS_KAFKA_*`), apart from the workers'."""

    model_config = SettingsConfigDict(env_prefix="OMNIHOOKS_", frozen=True, extra="ignore")

    kafka_home: Path = SOURCE_TREE / ".cache" / "kafka"
    kafka_port: int = Field(9092, gt=0, lt=65536)
    kafka_controller_port: int | None = Field(None, gt=0, lt=65536)
    kafka_heap: str = "512m"
    # A secured broker: SASL_SSL (PLAIN, SCRAM) and mutual TLS, ACLs on (`kafka up --secured`)
    kafka_secured: bool = False


def new_cluster_id() -> str:
    """A KRaft cluster id as Kafka's `Uuid.randomUuid()` makes it: 22 base64url characters,
    never starting with `-` (the storage tool would read such an id as a flag; 1 id in 64)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


class LocalKafkaError(RuntimeError):
    """The local broker could not be resolved, formatted, started or stopped."""


def kafka_version() -> str:
    """The broker version pinned in deploy/local/pom.xml."""
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text())
    if match is None:
        raise LocalKafkaError(f"no <kafka.version> in {POM}")
    return match.group(1)


@dataclass(frozen=True)
class LocalKafka:
    """Paths and ports of one local broker."""

    home: Path
    port: int
    controller_port: int
    heap: str
    version: str
    secured: bool = False

    @classmethod
    def configured(cls, **overrides: Any) -> LocalKafka:
        """The broker the environment describes; keyword overrides win (tests' own ports)."""
        settings = LocalKafkaSettings(**overrides)
        return cls(
            home=settings.kafka_home,
            port=settings.kafka_port,
            controller_port=settings.kafka_controller_port or settings.kafka_port + 1,
            heap=settings.kafka_heap,
            version=kafka_version(),
            secured=settings.kafka_secured,
        )

    @property
    def libs(self) -> Path:
        return self.home / self.version / "libs"

    @property
    def data_dir(self) -> Path:
        return self.home / f"data-{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "broker.log"

    @property
    def config_file(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def bootstrap(self) -> str:
        """Where clients connect: SASL_SSL on a secured broker (by the name its certificate
        holds), else plaintext."""
        return f"{HOST}:{self.port}" if self.secured else f"127.0.0.1:{self.port}"

    @property
    def mtls_bootstrap(self) -> str:
        """A secured broker's listener for clients with a certificate (mutual TLS)."""
        return f"{HOST}:{self.port + 2}"

    @property
    def internal_bootstrap(self) -> str:
        """The broker's own plaintext listener: the inter-broker one of a secured broker,
        whose anonymous principal is a super user. Health checks and set-up only."""
        return f"127.0.0.1:{self.port + 3}" if self.secured else self.bootstrap

    @property
    def security(self) -> BrokerSecurity:
        return BrokerSecurity(self.data_dir / "security")

    # -- lifecycle -------------------------------------------------------------------------

    def up(self, timeout_s: float = 90.0, fresh: bool = False) -> str:
        """Start the broker unless it runs; return what was done. `fresh`: a broker started
        now starts empty (tests and benchmarks: their topics are throwaway, and a day of runs'
        partitions kept in one folder exhausted the broker's 512 MB heap)."""
        pid = self.running_pid()
        if pid is not None:
            self.wait_ready(timeout_s, pid)
            return f"already running (pid {pid}) on {self.bootstrap}"
        if port_in_use(self.port):
            raise LocalKafkaError(
                f"port {self.port} is taken by another process; set OMNIHOOKS_KAFKA_PORT "
                f"or stop it (is a broker already serving {self.bootstrap}?)"
            )
        if fresh:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        self.resolve_jars()
        if self.secured:
            self.security.create()
        self.write_config()
        self.format_storage()
        pid = self.start()
        self.wait_ready(timeout_s, pid)
        warm_up_group_coordinator(self.internal_bootstrap, timeout_s)
        if self.secured:
            return (
                f"started (pid {pid}): SASL_SSL (PLAIN, SCRAM-SHA-256/512) on {self.bootstrap}, "
                f"mutual TLS on {self.mtls_bootstrap}, ACLs on; users, passwords and "
                f"certificates in {self.security.folder}"
            )
        return f"started (pid {pid}) on {self.bootstrap}, data in {self.data_dir}"

    def down(self, timeout_s: float = 60.0) -> str:
        """Stop the broker and wait until its process is gone."""
        pid = self.running_pid()
        if pid is None:
            return "not running"
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and pid_alive(pid):
            time.sleep(0.2)
        if pid_alive(pid):
            os.killpg(pid, signal.SIGKILL)
            while pid_alive(pid):
                time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
        return f"stopped (pid {pid})"

    def status(self) -> tuple[bool, str]:
        """Whether the broker runs and answers, with a line for people."""
        pid = self.running_pid()
        if pid is None:
            return False, f"not running (would serve {self.bootstrap}, data in {self.data_dir})"
        if metadata_answers(self.internal_bootstrap, 5.0):
            return True, f"running (pid {pid}) on {self.bootstrap}, Kafka {self.version}"
        return False, f"process {pid} is up but {self.bootstrap} does not answer yet"

    # -- steps -----------------------------------------------------------------------------

    def running_pid(self) -> int | None:
        """The broker's pid, clearing a stale pid file left by a crash."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if pid_alive(pid) and _is_our_broker(pid, self.config_file):
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def resolve_jars(self) -> None:
        """Copy the broker's jars from Maven into the cache, once per version."""
        marker = self.libs / ".complete"
        if marker.exists():
            return
        mvn = shutil.which("mvn")
        if mvn is None:
            raise LocalKafkaError("Maven (mvn) is not on PATH: it resolves the Kafka jars")
        self.libs.mkdir(parents=True, exist_ok=True)
        cmd = [
            mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
            "-DincludeScope=runtime", f"-DoutputDirectory={self.libs}",
        ]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise LocalKafkaError("mvn could not resolve the Kafka jars:\n" + done.stdout[-3000:])
        marker.touch()

    def write_config(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log_dirs = self.data_dir / "kraft-logs"
        listeners = (
            self.security.listener_config(self.port, self.controller_port)
            if self.secured
            else [
                f"listeners=PLAINTEXT://127.0.0.1:{self.port},"
                f"CONTROLLER://127.0.0.1:{self.controller_port}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            ]
        )
        self.config_file.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.bootstrap.servers=127.0.0.1:{self.controller_port}",
                    "controller.listener.names=CONTROLLER",
                    *listeners,
                    f"log.dirs={log_dirs}",
                    "num.partitions=1",
                    # One node: internal topics cannot have more replicas than that.
                    "offsets.topic.replication.factor=1",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    # Tests start and stop consumer groups all the time: no 3 s join delay.
                    "group.initial.rebalance.delay.ms=0",
                    # A topic missing from the catalogue is a mistake to see, not a silent
                    # one-partition topic that breaks co-partitioning.
                    "auto.create.topics.enable=false",
                    "",
                ]
            )
        )

    def format_storage(self) -> None:
        """Format KRaft storage once; a formatted directory is left alone."""
        if (self.data_dir / "kraft-logs" / "meta.properties").exists():
            return
        cmd = [
            *self._java(), "kafka.tools.StorageTool", "format", "--standalone",
            f"--cluster-id={new_cluster_id()}", "-c", str(self.config_file),
        ]  # fmt: skip
        if self.secured:  # SCRAM credentials live in the metadata log, from the start
            for user, password in self.security.users().items():
                for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
                    cmd += ["--add-scram", f"{mechanism}=[name={user},password={password}]"]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise LocalKafkaError(f"formatting KRaft storage failed:\n{done.stdout}{done.stderr}")

    def start(self) -> int:
        with open(self.log_file, "ab") as log:
            process = subprocess.Popen(
                [*self._java(), "kafka.Kafka", str(self.config_file)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # survives the CLI; `down` signals its whole group
                cwd=self.data_dir,
            )
        self.pid_file.write_text(str(process.pid))
        return process.pid

    def wait_ready(self, timeout_s: float, pid: int) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                self.pid_file.unlink(missing_ok=True)
                raise LocalKafkaError(f"the broker exited; last log lines:\n{self.log_tail()}")
            if metadata_answers(self.internal_bootstrap, 2.0):
                return
            time.sleep(0.5)
        raise LocalKafkaError(
            f"the broker did not answer on {self.bootstrap} within {timeout_s:.0f}s; "
            f"last log lines:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def _java(self) -> list[str]:
        java_home = os.environ.get("JAVA_HOME")
        java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
        if not java:
            raise LocalKafkaError("Java (17+) is not on PATH: the local broker runs on the JVM")
        return [
            java,
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            f"-Dkafka.logs.dir={self.data_dir}",
            "-cp",
            f"{self.libs}/*",
        ]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) is not a running broker.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][:1] != "Z"
    except (FileNotFoundError, IndexError):
        return True


def _is_our_broker(pid: int, config_file: Path) -> bool:
    """Guard against a recycled pid: the process must run kafka.Kafka on our config."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            args = cmdline.read().split(b"\0")
    except FileNotFoundError:
        return True  # not Linux: trust the pid file
    return b"kafka.Kafka" in args and str(config_file).encode() in args


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def metadata_answers(bootstrap: str, timeout_s: float) -> bool:
    """True when a broker at `bootstrap` answers a metadata request."""
    admin = kafka.admin(KafkaConfig(bootstrap), check=False, log_level=0, logger=_quiet)
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except Exception:
        return False
    return len(metadata.brokers) > 0


def warm_up_group_coordinator(bootstrap: str, timeout_s: float) -> None:
    """Make a new broker create and load __consumer_offsets now, not under the first worker.

    On a freshly formatted broker the first group to join meets "coordinator load in
    progress" while that 50-partition topic is created; we saw a Faust worker come up "ready"
    and then fetch nothing. Asking for a group's committed offsets until it answers moves
    that wait here, where `up` can wait for it.
    """
    from confluent_kafka import KafkaException, TopicPartition

    consumer = kafka.group_consumer(
        KafkaConfig(bootstrap), "omnihooks-warm-up", check=False, log_level=0, logger=_quiet
    )
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                consumer.committed([TopicPartition("__consumer_offsets", 0)], timeout=5)
                return
            except KafkaException:
                if time.monotonic() > deadline:
                    raise LocalKafkaError("the broker's group coordinator never loaded") from None
                time.sleep(0.5)
    finally:
        consumer.close()


class _QuietLogger:
    """librdkafka logs every refused connection while the broker boots; those are expected."""

    def log(self, *args: object) -> None:
        pass


_quiet = _QuietLogger()

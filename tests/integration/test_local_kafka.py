"""`omnihooks kafka up|down|status` on its own port: idempotent, and `down` leaves nothing."""

import os
import signal
import subprocess
import sys
import time

import pytest

from streams.dev.local_kafka import metadata_answers, pid_alive, port_in_use
from tests.conftest import local_kafka_for_tests

# Kills workers or starts brokers on a timeline: one at a time, not beside each other.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("heavy")]

PORT = 19192


def _omnihooks(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMNIHOOKS_KAFKA_PORT": str(PORT)}
    return subprocess.run(
        [sys.executable, "-m", "streams.ops.cli", *args],
        env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


def test_up_is_idempotent_and_down_leaves_no_process() -> None:
    broker = local_kafka_for_tests(PORT)
    first = _omnihooks("kafka", "up")
    assert first.returncode == 0, first.stderr
    try:
        assert "started" in first.stdout
        pid = broker.running_pid()
        assert pid is not None and metadata_answers(broker.bootstrap, 10)
        second = _omnihooks("kafka", "up")
        assert second.returncode == 0 and "already running" in second.stdout
        assert broker.running_pid() == pid
        assert _omnihooks("kafka", "status").returncode == 0
    finally:
        down = _omnihooks("kafka", "down")
    assert down.returncode == 0, down.stderr
    assert not pid_alive(pid)
    assert not port_in_use(PORT) and not port_in_use(PORT + 1)
    status = _omnihooks("kafka", "status")
    assert status.returncode == 1 and "not running" in status.stdout
    assert _omnihooks("kafka", "down").stdout.strip() == "not running"


def test_up_after_a_crash_clears_the_stale_pid_and_keeps_the_data() -> None:
    broker = local_kafka_for_tests(PORT)
    assert _omnihooks("kafka", "up").returncode == 0
    pid = broker.running_pid()
    assert pid is not None
    os.killpg(pid, signal.SIGKILL)  # a crash: the pid file stays behind
    while pid_alive(pid):
        time.sleep(0.1)
    assert broker.pid_file.exists()
    try:
        again = _omnihooks("kafka", "up")
        assert again.returncode == 0, again.stderr
        assert "started" in again.stdout
        assert broker.running_pid() not in (None, pid)
    finally:
        assert _omnihooks("kafka", "down").returncode == 0


def test_a_fresh_start_drops_earlier_topics_and_a_plain_restart_keeps_them() -> None:
    """Tests and benchmarks start their broker `fresh`: their topics are throwaway, and a
    data folder kept across runs grew to 15,000 partitions and exhausted the broker's heap."""
    from confluent_kafka.admin import AdminClient, NewTopic

    broker = local_kafka_for_tests(PORT)

    def topics() -> set[str]:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        return set(admin.list_topics(timeout=30).topics)

    broker.up(timeout_s=120, fresh=True)
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic("an-earlier-run", 1, 1)])["an-earlier-run"].result(30)
        broker.down()
        broker.up(timeout_s=120)
        assert "an-earlier-run" in topics()
        broker.down()
        broker.up(timeout_s=120, fresh=True)
        assert "an-earlier-run" not in topics()
    finally:
        broker.down()

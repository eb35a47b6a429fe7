"""Deploys and crashes with three workers, while conversations flow (issue 35's benchmark).

    .venv/bin/python -m bench.failover            # about 15 minutes, into bench/results/failover.json

Three `omnihooks worker --role all` processes as a StatefulSet runs them: static membership
(a name each), RocksDB in a directory of each one's own, one standby replica. Visitor
messages flow at a steady rate into open rooms the whole time, each timed from its produce
to its Message webhook at the receiver. Every disruption is reported beside the same run
with nothing restarted:

- 10,000 open rooms: nothing restarted; a rolling restart of all three, one at a time, each
  SIGTERM'd and started again once the previous one is ready (Kubernetes' rolling update);
- 100,000 open rooms: nothing restarted; a SIGKILL of one worker restarted at once (a
  crashed container); a SIGKILL of one worker that never comes back (a lost node);
- a cold start's restore of 100,000 rooms from the changelogs, in memory and on RocksDB,
  as a share of a plain consumer reading the same changelogs, with Faust alone recovering
  them as the floor.

For each disruption: messages lost (must be 0) and duplicated, p50/p99/max delay, and the
seconds from the disruption until every room flows again (the last message that waited
more than `LATE_S` arrived). A message produced within `IN_FLIGHT_S` before a disruption
counts with it.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from bench.run import RESULTS, ROOT, Bench, bench_session, percentile, wait_until
from streams.agents.tables import changelog_topic, role_app_id, tables_of
from streams.core.clock import iso
from streams.core.sessions import DELIVERY_NAMESPACE
from streams.dev import demo
from streams.ops.topic_admin import apply_catalogue
from streams.settings import Settings, load_settings
from tests.support.harness import create_changelogs, pipeline_topics, settings_env, wait_committed
from topics import codec
from topics.catalogue import Topic, load_catalogue

WORKERS = 3
PARTITIONS = 6  # two per worker
RATE = 30  # visitor messages/s, steady
LATE_S = 1.0  # a message that waited longer than this was held up by the disruption
# A message produced this long before a disruption was still on its way at it: it counts
# with that disruption, not with the phase before (whose tail would otherwise carry the
# next phase's delays).
IN_FLIGHT_S = 2.0
DATA = ROOT / ".cache" / "failover"


class Worker:
    """One worker of the StatefulSet: its name, its own data directory, its own log."""

    def __init__(self, settings: Settings, name: str) -> None:
        self.name = name
        self.settings = settings.model_copy(
            update={"group_instance_id": name, "data_dir": DATA / name}
        )
        self.log_path = DATA / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "streams.ops.cli", "--loglevel", "INFO", "worker",
                 "--role", "all"],
                env=settings_env(self.settings), stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
            )  # fmt: skip

    def readies(self) -> int:
        if not self.log_path.exists():
            return 0
        return self.log_path.read_text(errors="replace").count("Worker ready")

    def wait_ready(self, before: int, timeout_s: float = 900) -> None:
        wait_until(lambda: self.readies() > before, timeout_s, 0.2)
        assert self.readies() > before, f"{self.name} was not ready in {timeout_s} s"

    def stop(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)
        try:
            self.process.wait(120)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def restart_log_lines(self) -> list[str]:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return [line for line in text.splitlines() if "table recovery:" in line]


class Talk(threading.Thread):
    """Visitor messages at `rate`/s into random open rooms until stopped; remembers each
    one's delivery id and when it was produced."""

    def __init__(self, bench: Bench, settings: Settings, rooms: int, rate: int) -> None:
        super().__init__(daemon=True, name="talk")
        self.topic = f"{settings.topic_prefix}{Topic.MESSAGES.value}"
        self.producer = bench.producer()
        self.rooms, self.rate = rooms, rate
        self.sent: list[tuple[str, float]] = []  # (delivery id, produced at)
        self._halt = threading.Event()

    def run(self) -> None:
        started, n = time.perf_counter(), 0
        while not self._halt.is_set():
            room = room_id((n * 7919) % self.rooms)  # spread over every partition
            eid = f"talk-{n}"
            record = demo.message_event(room, f"m-{n}", iso(time.time()), f"talk {n}", True, eid)
            self.producer.produce(self.topic, key=record.key, value=record.encoded())
            self.producer.poll(0)
            self.sent.append((str(uuid.uuid5(DELIVERY_NAMESPACE, f"/{eid}/Message")), time.time()))
            n += 1
            delay = started + n / self.rate - time.perf_counter()
            if delay > 0:
                self._halt.wait(delay)
        self.producer.flush(30)

    def stop(self) -> None:
        self._halt.set()
        self.join(60)


def room_id(n: int) -> str:
    return f"fo{n:07d}"


def phase_figures(
    sent: list[tuple[str, float]], arrivals: list[tuple[str, float]], start: float, end: float,
    disrupted_at: float | None,
) -> dict[str, Any]:  # fmt: skip
    """Lost, duplicated and delayed messages among those produced in [start, end)."""
    first: dict[str, float] = {}
    counts: Counter[str] = Counter()
    for delivery, at in arrivals:
        counts[delivery] += 1
        first.setdefault(delivery, at)
    window = [(d, t) for d, t in sent if start <= t < end]
    delays = [(first[d] - t, first[d]) for d, t in window if d in first]
    late_arrivals = [arrived for delay, arrived in delays if delay > LATE_S]
    seconds = [delay for delay, _ in delays]
    return {
        "messages": len(window),
        "lost": sum(1 for d, _ in window if d not in first),
        "duplicates": sum(counts[d] - 1 for d, _ in window if counts[d] > 1),
        "p50_ms": round(percentile(seconds, 0.50) * 1000, 1) if seconds else None,
        "p99_ms": round(percentile(seconds, 0.99) * 1000, 1) if seconds else None,
        "max_ms": round(max(seconds) * 1000, 1) if seconds else None,
        "late": len(late_arrivals),
        # from the disruption until the last held-up message arrived: every room flows again
        "flowing_again_s": (
            round(max(late_arrivals) - disrupted_at, 2)
            if disrupted_at is not None and late_arrivals else 0.0
        ),
    }  # fmt: skip


class Cluster:
    """Three workers on fresh topics, rooms opened through the pipeline itself."""

    def __init__(self, bench: Bench, rooms: int) -> None:
        self.bench = bench
        prefix = f"f{uuid.uuid4().hex[:8]}."
        self.settings = load_settings(
            kafka_bootstrap_servers=bench.bootstrap, topic_prefix=prefix,
            app_id=f"failover-{prefix.strip('.')}", partitions=PARTITIONS,
            webhook_url=bench.url("/hook"), send_on_visitor_message=True,
            compat="rocketchat-7", store="rocksdb", web_enabled=False,
        )  # fmt: skip
        apply_catalogue(bench.bootstrap, load_catalogue(PARTITIONS), prefix)
        create_changelogs(self.settings, "all")
        shutil.rmtree(DATA, ignore_errors=True)
        DATA.mkdir(parents=True)
        self.workers = [Worker(self.settings, f"worker-{n}") for n in range(WORKERS)]
        for worker in self.workers:
            worker.start()
        for worker in self.workers:
            worker.wait_ready(0)
        self.rooms = rooms
        self.open_rooms()
        self.phases: list[tuple[str, float, float, float | None]] = []

    def open_rooms(self) -> None:
        producer = self.bench.producer()
        prefix = self.settings.topic_prefix
        for n in range(self.rooms):
            room = room_id(n)
            for record in demo.seed_conversation(room, run=room)[:2]:  # started, taken
                producer.produce(f"{prefix}{record.topic.value}", key=record.key,
                                 value=record.encoded())  # fmt: skip
            if n % 1000 == 0:
                producer.poll(0)
        producer.flush(600)
        group = role_app_id(self.settings, "all")
        wait_committed(self.bench.bootstrap, group, pipeline_topics(self.settings)[:2], 1800)

    def run(self, plan: list[tuple[str, Any]]) -> dict[str, Any]:
        """Each (name, action) in turn while messages flow; the action returns when its
        disruption is over, or is a number of quiet seconds (nothing restarted)."""
        self.bench.forget()
        talk = Talk(self.bench, self.settings, self.rooms, RATE)
        talk.start()
        try:
            time.sleep(5)  # the flow is steady before the first phase
            for name, action in plan:
                start = time.time()
                if isinstance(action, int | float):
                    time.sleep(action)
                    self.phases.append((name, start, time.time(), None))
                else:
                    disrupted_at = action()
                    time.sleep(10)  # and the flow after it
                    self.phases.append((name, start, time.time(), disrupted_at))
        finally:
            talk.stop()
        wait_until(lambda: len({d for d, _ in self.bench.arrivals()}) >= len(talk.sent), 180, 1)
        arrivals = self.bench.arrivals()
        raw = {"sent": talk.sent, "arrivals": arrivals, "phases": self.phases}
        (DATA / f"raw-{self.rooms}.json").write_bytes(codec.dumps(raw))
        return {
            name: phase_figures(
                talk.sent, arrivals, start - IN_FLIGHT_S, end - IN_FLIGHT_S, disrupted
            )
            for name, start, end, disrupted in self.phases
        }

    def rolling_restart(self) -> float:
        disrupted_at = time.time()
        for worker in self.workers:
            before = worker.readies()
            worker.stop(signal.SIGTERM)
            worker.start()
            worker.wait_ready(before)
            time.sleep(2)  # the next pod is stopped once this one is ready (minReadySeconds)
        return disrupted_at

    def kill_and_restart(self) -> float:
        worker = self.workers[-1]
        before = worker.readies()
        disrupted_at = time.time()
        worker.stop(signal.SIGKILL)
        worker.start()  # the same name and volume: a container restart
        worker.wait_ready(before)
        return disrupted_at

    def kill_for_good(self) -> float:
        disrupted_at = time.time()
        self.workers[-1].stop(signal.SIGKILL)
        time.sleep(self.settings.session_timeout_s + 15)  # the group notices, standbys take over
        return disrupted_at

    def stop(self) -> None:
        for worker in self.workers:
            if worker.process is not None and worker.process.poll() is None:
                worker.stop(signal.SIGTERM)


def cold_restore(bench: Bench, rooms: int, store: str) -> dict[str, Any]:
    """A sessions worker's start → ready over changelogs holding `rooms` open rooms, beside
    a plain consumer reading the same records (the tables keep bytes: a restore decodes
    nothing either) and Faust alone recovering them (bench/faust_floor.py "recover")."""
    settings = bench.settings(store=store)
    records, _ = bench.fill_room_changelogs(settings, rooms, messages=1)
    topics = [changelog_topic(settings, "sessions", t) for t in tables_of("sessions", settings)]
    consumed_s = raw_consume_s(bench.bootstrap, topics, records)
    ready_s = bench.ready_s(settings)
    shutil.rmtree(settings.data_dir / f"{settings.app_id}-sessions", ignore_errors=True)
    floor_s = bench.recovery_floor_s(settings)
    shutil.rmtree(settings.data_dir / f"{settings.app_id}-sessions", ignore_errors=True)
    return {
        "rooms": rooms,
        "store": store,
        "records": records,
        "ready_s": round(ready_s, 2),
        "raw_consume_s": round(consumed_s, 2),
        "faust_alone_s": round(floor_s, 2),
        "share_of_raw": round(consumed_s / ready_s, 3),
        "faust_alone_share_of_raw": round(consumed_s / floor_s, 3),
    }


def raw_consume_s(bootstrap: str, topics: list[str], count: int) -> float:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"raw-{uuid.uuid4()}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})  # fmt: skip
    assignment = [
        TopicPartition(topic, p, 0)
        for topic in topics
        for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions
    ]
    consumer.assign(assignment)
    seen, started = 0, time.perf_counter()
    while seen < count:
        for message in consumer.consume(5000, 1.0):
            if not message.error():
                seen += 1
    elapsed = time.perf_counter() - started
    consumer.close()
    return elapsed


def render(r: dict[str, Any]) -> str:
    lines = [f"# Deploys and crashes, three workers ({r['date']}, {r['machine']})", "",
             f"Visitor messages at {RATE}/s into open rooms the whole time; RocksDB, static "
             f"membership, one standby replica. Late: waited over {LATE_S:.0f} s.", "",
             "| rooms | phase | messages | lost | duplicates | p50 ms | p99 ms | max ms | "
             "every room flowing again after |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for rooms, phases in r["failover"].items():
        for name, f in phases.items():
            lines.append(f"| {rooms} | {name} | {f['messages']} | {f['lost']} | "
                         f"{f['duplicates']} | {f['p50_ms']} | {f['p99_ms']} | {f['max_ms']} | "
                         f"{f['flowing_again_s']} s |")  # fmt: skip
    lines += ["", "| cold restore | records | start → ready | plain consumer | share | "
              "Faust alone | its share |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for c in r.get("restore", []):
        lines.append(f"| {c['rooms']:,} rooms, {c['store']} | {c['records']:,} | {c['ready_s']} s"
                     f" | {c['raw_consume_s']} s | {c['share_of_raw']:.0%} | "
                     f"{c['faust_alone_s']} s | {c['faust_alone_share_of_raw']:.0%} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description="deploys and crashes with three workers")
    parser.add_argument("--rooms", type=int, default=10_000, help="rooms for the rolling restart")
    parser.add_argument("--kill-rooms", type=int, default=100_000, help="rooms for the SIGKILLs")
    parser.add_argument("--skip-restore", action="store_true", help="no cold-restore stage")
    parser.add_argument("--only-kill", action="store_true", help="only the SIGKILL stages")
    args = parser.parse_args()
    r: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                         "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                         "failover": {}}  # fmt: skip
    out = RESULTS / "failover.json"

    def step(name: str) -> None:
        out.write_text(codec.dumps_pretty(r) + "\n")
        print(f"[{time.strftime('%H:%M:%S')}] {name}", flush=True)

    with bench_session() as bench:
        if not args.only_kill:
            step(f"{args.rooms:,} open rooms, three workers")
            cluster = Cluster(bench, args.rooms)
            try:
                r["failover"][f"{args.rooms:,}"] = cluster.run(
                    [("nothing restarted", 40), ("rolling restart", cluster.rolling_restart)]
                )
            finally:
                cluster.stop()
        step(f"{args.kill_rooms:,} open rooms, three workers")
        cluster = Cluster(bench, args.kill_rooms)
        try:
            r["failover"][f"{args.kill_rooms:,}"] = cluster.run(
                [("nothing restarted", 40), ("SIGKILL, restarted", cluster.kill_and_restart),
                 ("SIGKILL, not restarted", cluster.kill_for_good)]
            )  # fmt: skip
            r["restores_logged"] = cluster.workers[0].restart_log_lines()[-3:]
        finally:
            cluster.stop()
        if not args.skip_restore:
            r["restore"] = []
            for store in ("memory", "rocksdb"):
                step(f"cold restore, 100,000 rooms, {store}")
                r["restore"].append(cold_restore(bench, 100_000, store))
    step("done")
    (RESULTS / "failover.md").write_text(render(r))
    print(render(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

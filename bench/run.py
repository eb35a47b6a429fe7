"""omnihooks benchmark: every figure beside its target and the ceiling measured in the same run.

    .venv/bin/python bench/run.py            # every stage (how long: bench/README.md)

Uses KAFKA_BOOTSTRAP_SERVERS when set, else the project's local broker on port 19392 (started
and stopped here). A separate receiver process (bench/receiver.py) answers the webhooks;
each measured stage runs ONE worker process. Results: bench/results/latest.json and .md
(and latency.png when matplotlib is installed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from confluent_kafka import Consumer, Producer, TopicPartition

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from streams.core.clock import iso  # noqa: E402
from streams.core.leads import compile_lead_patterns  # noqa: E402
from streams.core.payloads import build_session_payload  # noqa: E402
from streams.core.sessions import DELIVERY_NAMESPACE, SessionProcessor, Source  # noqa: E402
from streams.dev import demo  # noqa: E402
from streams.dev.local_kafka import LocalKafka  # noqa: E402
from streams.ops.topic_admin import apply_catalogue  # noqa: E402
from streams.settings import Settings, load_settings  # noqa: E402
from tests.support.harness import create_changelogs, free_port, settings_env  # noqa: E402
from topics import codec  # noqa: E402
from topics.catalogue import Topic, load_catalogue  # noqa: E402
from topics.records import WebhookJob  # noqa: E402

RESULTS = ROOT / "bench" / "results"
PARTITIONS = 4
BENCH_PORT = 19392
SEED_MESSAGE = ROOT / "tests" / "golden" / "rocketchat-2023" / "message.json"
ISOLATION_STAGE_S = 30  # three times the retry delay the stage sets: retries fire in it


TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc; 0 where it cannot be read)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def wait_until(done: Callable[[], object], timeout_s: float, step_s: float) -> None:
    """Poll `done` every `step_s` until it is true or `timeout_s` has passed; the caller
    checks the outcome, so a stage fails with its own message."""
    deadline = time.time() + timeout_s
    while time.time() < deadline and not done():
        time.sleep(step_s)


def sleep_until(due: float) -> None:
    """Pace a load generator: sleep until `due` (perf_counter seconds), if it is ahead."""
    pause = due - time.perf_counter()
    if pause > 0:
        time.sleep(pause)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class KafkaArrivals(threading.Thread):
    """A plain librdkafka consumer on the jobs topic, beside the worker: when each job could
    first be read. Produce→read is the latency floor the broker and clients set on this
    machine, measured in the same run as the worker's produce→receipt."""

    def __init__(
        self, bootstrap: str, topic: str, key_of: Callable[[bytes], str] | None = None
    ) -> None:
        super().__init__(daemon=True, name="kafka-arrivals")
        self.key_of = key_of
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"k-{uuid.uuid4()}",
                                  "enable.auto.commit": False, "fetch.wait.max.ms": 10})  # fmt: skip
        self.key_start = len(b'{"delivery_id":"')  # jobs are encoded with delivery_id first
        partitions = self.consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = [TopicPartition(topic, p, self.consumer.get_watermark_offsets(
            TopicPartition(topic, p), timeout=10)[1]) for p in partitions]  # fmt: skip
        self.consumer.assign(ends)
        self.seen: dict[str, float] = {}
        self._halt = threading.Event()

    def run(self) -> None:
        start = self.key_start
        while not self._halt.is_set():
            message = self.consumer.poll(0.05)  # one at a time: consume(n) waits to fill n
            if message is not None and not message.error():
                value = message.value()
                key = self.key_of(value) if self.key_of else value[start : start + 36].decode()
                self.seen[key] = time.time()

    def stop(self) -> None:
        self._halt.set()
        self.join(10)
        self.consumer.close()


class Bench:
    def __init__(self, bootstrap: str, broker_pid: int | None = None) -> None:
        self.bootstrap = bootstrap
        self.broker_pid = broker_pid
        self.port = free_port()
        self.receiver = subprocess.Popen(
            [sys.executable, "-m", "bench.receiver", str(self.port)],
            stdout=subprocess.DEVNULL,
            cwd=ROOT,
        )
        self.workers: list[subprocess.Popen[bytes]] = []
        # A source tree of another version whose workers the next stages run (`--against`);
        # None: this checkout's.
        self.worker_source: Path | None = None
        self.results: dict[str, Any] = {}
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                httpx.get(self.url("/arrivals"), timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def arrivals(self) -> list[tuple[str, float]]:
        return [tuple(a) for a in httpx.get(self.url("/arrivals"), timeout=30).json()]  # type: ignore[misc]

    def forget(self) -> None:
        httpx.delete(self.url("/arrivals"), timeout=10)

    def settings(self, **overrides: Any) -> Settings:
        prefix = f"b{uuid.uuid4().hex[:8]}."
        values: dict[str, Any] = {
            "kafka_bootstrap_servers": self.bootstrap,
            "topic_prefix": prefix,
            "app_id": f"bench-{prefix.strip('.')}",
            "partitions": PARTITIONS,
            "data_dir": ROOT / ".cache" / "bench-worker",
            "web_enabled": False,
        }
        values.update(overrides)
        settings = load_settings(**values)
        apply_catalogue(self.bootstrap, load_catalogue(PARTITIONS), prefix)
        return settings

    def start_worker(self, settings: Settings, role: str) -> subprocess.Popen[bytes]:
        create_changelogs(settings, role)  # workers create no topics: `topics apply --role`
        env, source, cli = settings_env(settings), ROOT, "streams.ops.cli"
        if self.worker_source is not None:
            # Its packages ahead of this checkout's (installed editable, found after PYTHONPATH).
            source, env["PYTHONPATH"] = self.worker_source, str(self.worker_source)
            if not (source / "streams" / "ops" / "cli.py").exists():
                cli = "streams.cli"  # the layout before the stage folders
        with open(ROOT / ".cache" / f"bench-{role}.log", "ab") as log:  # the child keeps its copy
            worker = subprocess.Popen(
                [sys.executable, "-m", cli, "--loglevel", "INFO", "worker", "--role", role],
                env=env, stdout=log, stderr=subprocess.STDOUT, cwd=source,
            )  # fmt: skip
        self.workers.append(worker)
        return worker

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.terminate()
        for worker in self.workers:
            try:
                worker.wait(60)
            except subprocess.TimeoutExpired:
                worker.kill()
        self.workers.clear()

    def close(self) -> None:
        self.stop_workers()
        self.receiver.terminate()
        self.receiver.wait(10)

    def producer(self) -> Producer:
        return Producer(
            {"bootstrap.servers": self.bootstrap, "acks": "all", "enable.idempotence": True,
             "linger.ms": 5, "queue.buffering.max.messages": 1_000_000}
        )  # fmt: skip

    # -- ceilings --------------------------------------------------------------------------

    def ceiling_post(self, count: int = 40_000, concurrency: int = 64) -> float:
        async def run() -> float:
            body = codec.dumps(job_body(0))
            connector = aiohttp.TCPConnector(limit=concurrency)
            async with aiohttp.ClientSession(connector=connector) as session:
                queue = iter(range(count))

                async def one() -> None:
                    for _ in queue:
                        async with session.post(self.url("/ceiling"), data=body) as response:
                            await response.read()

                started = time.perf_counter()
                await asyncio.gather(*(one() for _ in range(concurrency)))
                return count / (time.perf_counter() - started)

        rate = asyncio.run(run())
        self.forget()
        return rate

    def fill_jobs(
        self,
        topic: str,
        count: int,
        url: Callable[[int], str],
        numbered: bool = False,
        job_type: str = "Message",
        **fields: Any,
    ) -> list[WebhookJob]:
        """`count` jobs for 500 rooms in turn; `numbered`: each room's numbered from 1, as the
        session pipeline numbers them (`webhook-sequence`), so ordered delivery orders them.
        `fields`: more of each job's fields (its endpoint, its traceparent), each a value or
        a function of the job's number."""
        producer = self.producer()
        jobs = []
        for n in range(count):
            more = {k: v(n) if callable(v) else v for k, v in fields.items()}
            job = WebhookJob(str(uuid.uuid4()), job_type, f"room-{n % 500}", url(n), job_body(n),
                             "2023-02-02T10:00:00.000Z",
                             sequence=n // 500 + 1 if numbered else None, **more)  # fmt: skip
            jobs.append(job)
            producer.produce(topic, key=job.key(), value=job.to_json())
            if n % 10_000 == 0:
                producer.poll(0)
        producer.flush(120)
        return jobs

    def read_from_start(self, topic: str) -> Consumer:
        """A plain consumer of every partition of `topic`, from offset 0, in no group's way."""
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"r-{uuid.uuid4()}",
                             "enable.auto.commit": False})  # fmt: skip
        meta = consumer.list_topics(topic, timeout=10)
        consumer.assign([TopicPartition(topic, p, 0) for p in meta.topics[topic].partitions])
        return consumer

    def ceiling_consume(self, topic: str, count: int) -> float:
        consumer = self.read_from_start(topic)
        seen, started = 0, time.perf_counter()
        while seen < count:
            for message in consumer.consume(1000, 1.0):
                if not message.error():
                    codec.loads(message.value())
                    seen += 1
        rate = count / (time.perf_counter() - started)
        consumer.close()
        return rate

    def start_floor(
        self, settings: Settings, count: int, writes: int | str, url: str | None = None
    ) -> tuple[int, Path]:
        out = ROOT / ".cache" / "bench-floor.out"
        out.unlink(missing_ok=True)
        out.with_suffix(".ready").unlink(missing_ok=True)
        topic = f"{settings.topic_prefix}webhook-jobs"
        with open(ROOT / ".cache" / "bench-floor.log", "ab") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "bench.faust_floor", topic, str(count), str(writes),
                 str(out), *([url] if url else [])],
                env=settings_env(settings), stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
            )  # fmt: skip
        self.workers.append(worker)
        return worker.pid, out

    def faust_floor(self, writes: int | str, count: int = 30_000, post: bool = False) -> float:
        """Events/s of a Faust agent that does nothing with each event but write `writes`
        table keys ("3d": three through the engine's DirectTable, as the session tables write
        a chat message), or POST it
        (bench/faust_floor.py): what Faust itself costs here."""
        settings = self.settings()
        self.fill_jobs(f"{settings.topic_prefix}webhook-jobs", count, lambda n: self.url("/hook"))
        _, out = self.start_floor(settings, count, writes, self.url("/floor") if post else None)
        wait_until(out.exists, 180, 0.5)
        self.stop_workers()
        assert out.exists(), f"the Faust floor with {writes} writes did not finish"
        return float(out.read_text())

    def faust_floor_cpu(self, rate: int, seconds: float) -> float:
        """CPU cores a Faust agent doing nothing uses while events arrive at `rate`/s: the
        share of this machine Faust's consumer takes before a worker does any work."""
        settings = self.settings()
        topic = f"{settings.topic_prefix}webhook-jobs"
        total = int(rate * seconds)
        pid, out = self.start_floor(settings, total + 1, 0)
        producer = self.producer()
        body = codec.dumps(job_body(0))
        producer.produce(topic, key=b"warm", value=body)
        producer.flush(10)
        wait_until(out.with_suffix(".ready").exists, 60, 0.2)
        used, started = cpu_seconds(pid), time.perf_counter()
        for n in range(total):
            sleep_until(started + n / rate)
            producer.produce(topic, key=f"room-{n % 200}".encode(), value=body)
            producer.poll(0)
        producer.flush(30)
        cores = (cpu_seconds(pid) - used) / (time.perf_counter() - started)
        wait_until(out.exists, 60, 0.2)
        self.stop_workers()
        assert out.exists(), "the idle Faust agent did not read every event"
        return round(cores, 2)

    # -- stages ----------------------------------------------------------------------------

    def delivery_throughput(
        self,
        count: int = 20_000,
        workers: int = 1,
        numbered: bool = False,
        job_fields: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> tuple[float, float]:
        """Jobs/s of `workers` delivery workers over `count` jobs (`job_fields`: more of each
        job's fields), and a plain consumer's rate over the same jobs."""
        settings = self.settings(**overrides)
        topic = f"{settings.topic_prefix}webhook-jobs"
        self.fill_jobs(topic, count, lambda n: self.url("/hook"), numbered, **(job_fields or {}))
        consume = self.ceiling_consume(topic, count)
        for _ in range(workers):
            self.start_worker(settings, "delivery")
        wait_until(lambda: len(self.arrivals()) >= count, 240, 1)
        times = sorted(t for _, t in self.arrivals())
        self.stop_workers()
        self.forget()
        assert len(times) >= count, f"only {len(times)} of {count} delivered"
        # first to last receipt: the worker's start-up is not part of its throughput
        return count / (times[-1] - times[0]), consume

    def session_throughput(
        self, rooms: int = 3000, merge: bool = True, workers: int = 1
    ) -> tuple[float, int]:
        """Pre-filled rooms/messages (about 70% messages), one sessions worker; events/s from
        the first job to the last (one job per close). `merge`: the per-room order merge."""
        settings = self.settings(
            webhook_url=self.url("/hook"), send_on_close=True, order_merge=merge
        )
        producer = self.producer()
        records = session_records(rooms)
        for n, record in enumerate(records):
            producer.produce(f"{settings.topic_prefix}{record.topic.value}", key=record.key,
                             value=record.encoded())  # fmt: skip
            if n % 1000 == 0:
                producer.poll(0)
        producer.flush(120)
        events = len(records)
        for _ in range(workers):
            self.start_worker(settings, "sessions")
        topic = f"{settings.topic_prefix}webhook-jobs"
        consumer = self.read_from_start(topic)
        stamps: list[float] = []
        deadline = time.time() + 300
        while len(stamps) < rooms and time.time() < deadline:
            for message in consumer.consume(1000, 1.0):
                if not message.error():
                    stamps.append(message.timestamp()[1] / 1000)
        consumer.close()
        self.stop_workers()
        assert len(stamps) >= rooms, f"only {len(stamps)} of {rooms} closes"
        stamps.sort()
        # Events before the first close were processed before its timestamp too: count only
        # the span, conservatively, as all events over first..last close.
        return events / (stamps[-1] - stamps[0]), events

    def session_latency_at(self, rate: int, seconds: float, **order: Any) -> dict[str, float]:
        """Conversations produced at `rate` events/s to one sessions worker: the time from a
        message's produce to its Message job on the jobs topic (its Kafka timestamp)."""
        settings = self.settings(webhook_url=self.url("/hook"), send_on_visitor_message=True,
                                 send_on_agent_message=True, **order)  # fmt: skip
        self.start_worker(settings, "sessions")
        producer = self.producer()
        records: list[demo.InputRecord] = []
        for n in range(int(rate * seconds / 7) + 1):
            records += demo.seed_conversation(f"lat{n:06d}", run=f"lat{n:06d}")
        names = {t: f"{settings.topic_prefix}{t.value}" for t in (Topic.ROOMS, Topic.MESSAGES)}
        warm = demo.seed_conversation("warm-up", run="warm-up")
        for record in warm:  # the worker is ready once the warm-up's jobs are out
            producer.produce(names[record.topic], key=record.key, value=record.encoded())
        producer.flush(30)
        topic = f"{settings.topic_prefix}webhook-jobs"
        consumer = self.read_from_start(topic)
        warmed: list[Any] = []
        wait_until(lambda: warmed.extend(consumer.consume(100, 0.5)) or len(warmed) >= 3, 90, 0)
        sent: dict[str, float] = {}
        start = time.perf_counter()
        for i, record in enumerate(records):
            sleep_until(start + i / rate)
            producer.produce(names[record.topic], key=record.key, value=record.encoded())
            if record.topic is Topic.MESSAGES:
                sent[record.key.decode() + record.value["message"]["_id"]] = time.time()
            producer.poll(0)
        producer.flush(30)
        wanted = sum(
            1 for r in records if r.topic is Topic.MESSAGES and "t" not in r.value["message"]
        )
        latencies: list[float] = []
        deadline = time.time() + 60
        while len(latencies) < wanted and time.time() < deadline:
            for message in consumer.consume(1000, 1.0):
                if message.error():
                    continue
                job = codec.loads(message.value())
                key = str(job["room_id"]) + job["body"]["messages"][0]["_id"]
                if key in sent:
                    latencies.append(message.timestamp()[1] / 1000 - sent.pop(key))
        consumer.close()
        self.stop_workers()
        assert len(latencies) >= wanted, f"only {len(latencies)} of {wanted} Message jobs"
        ms = [x * 1000 for x in latencies]
        return {
            "rate": rate,
            "p50_ms": round(percentile(ms, 0.50), 1),
            "p99_ms": round(percentile(ms, 0.99), 1),
        }

    def live_latency_at(
        self, rate: int, seconds: float, rooms: int = 60, roles: tuple[str, ...] = ("all",)
    ) -> dict[str, Any]:
        """Live conversations end to end: `rooms` open rooms (started and taken beforehand),
        visitor messages at `rate` messages/s across them, each timed from its produce to its
        Message webhook at the receiver, beside the same records read by a plain consumer
        (Kafka alone: one hop, no POST) in the same stage. A worker per role in `roles`."""
        settings = self.settings(webhook_url=self.url("/hook"), send_on_visitor_message=True,
                                 compat="rocketchat-7")  # fmt: skip
        messages_topic = f"{settings.topic_prefix}{Topic.MESSAGES.value}"
        producer = self.producer()
        opened = []
        for n in range(rooms):
            started, taken, *_ = demo.seed_conversation(f"live{n:04d}", run=f"live{n:04d}")
            opened += [started, taken]
        for record in opened:
            producer.produce(f"{settings.topic_prefix}{record.topic.value}", key=record.key,
                             value=record.encoded())  # fmt: skip
        producer.flush(30)
        for role in roles:
            self.start_worker(settings, role)
        warm_id = "live-warm-up"
        warm = demo.message_event("live0000", "m-warm", iso(time.time()), "warm", True, warm_id)
        producer.produce(messages_topic, key=warm.key, value=warm.encoded())
        producer.flush(10)
        wait_until(self.arrivals, 90, 0.2)  # the worker is up once the warm-up arrives
        self.forget()

        def event_id(value: bytes) -> str:
            return str(codec.loads(value)["id"])

        floor = KafkaArrivals(self.bootstrap, messages_topic, event_id)
        floor.start()
        sent: dict[str, tuple[str, float]] = {}  # event id -> (delivery id, produced at)
        total = int(rate * seconds)
        started = time.perf_counter()
        for n in range(total):
            room = f"live{n % rooms:04d}"
            eid = f"live-{n}"
            record = demo.message_event(room, f"m-{n}", iso(time.time()), f"live {n}", True, eid)
            sleep_until(started + n / rate)
            producer.produce(messages_topic, key=record.key, value=record.encoded())
            producer.poll(0)
            delivery = str(uuid.uuid5(DELIVERY_NAMESPACE, f"/{eid}/Message"))
            sent[eid] = (delivery, time.time())
        producer.flush(30)
        wait_until(lambda: len(self.arrivals()) >= len(sent), 60, 0.5)
        arrivals = dict(self.arrivals())
        floor.stop()
        self.stop_workers()
        self.forget()
        latencies = [(arrivals[d] - t) * 1000 for d, t in sent.values() if d in arrivals]
        kafka = [(floor.seen[e] - t) * 1000 for e, (_, t) in sent.items() if e in floor.seen]
        return {
            "rate": rate,
            "messages": len(sent),
            "delivered": len(latencies),
            "p50_ms": round(percentile(latencies, 0.50), 1),
            "p99_ms": round(percentile(latencies, 0.99), 1),
            "max_ms": round(max(latencies), 1),
            "kafka_p50_ms": round(percentile(kafka, 0.50), 1),
            "kafka_p99_ms": round(percentile(kafka, 0.99), 1),
        }

    def latency_at(
        self, rate: int, seconds: float, failing_share: float = 0.0, **overrides: Any
    ) -> dict[str, float]:
        """Jobs produced at a fixed rate to one delivery worker; produce→receipt latency of the
        healthy ones, while `failing_share` of the jobs hit a failing endpoint."""
        settings = self.settings(retry_delay_s=10, **overrides)
        topic = f"{settings.topic_prefix}webhook-jobs"
        self.start_worker(settings, "delivery")
        # The same producer warms up and then runs: an idempotent producer holds its first
        # records until it has a producer id, and with a fresh producer that wait was the
        # p99, for the worker and for a plain consumer alike.
        producer = self.producer()
        warm_job = WebhookJob(str(uuid.uuid4()), "Message", "warm", self.url("/hook"), {}, "x")
        producer.produce(topic, key=warm_job.key(), value=warm_job.to_json())
        producer.flush(10)
        wait_until(self.arrivals, 60, 0.2)
        self.forget()
        floor = KafkaArrivals(self.bootstrap, topic)
        floor.start()
        sent: dict[str, float] = {}
        total = int(rate * seconds)
        cpu = self.cpu_use()
        started = time.perf_counter()
        for n in range(total):
            failing = (n % 100) < failing_share * 100
            job = WebhookJob(str(uuid.uuid4()), "Message", f"room-{n % 200}",
                             self.url("/fail" if failing else "/hook"), job_body(n), "x")  # fmt: skip
            sleep_until(started + n / rate)
            producer.produce(topic, key=job.key(), value=job.to_json())
            producer.poll(0)
            if not failing:
                sent[job.delivery_id] = time.time()
        producer.flush(30)
        cores = {name: round((used - cpu[name]) / (time.perf_counter() - started), 2)
                 for name, used in self.cpu_use().items()}  # fmt: skip
        wait_until(lambda: len(self.arrivals()) >= len(sent), 60, 0.5)
        arrivals = dict(self.arrivals())
        failed_posts = int(httpx.get(self.url("/failed"), timeout=30).json())
        floor.stop()
        self.stop_workers()
        self.forget()
        latencies = [(arrivals[i] - t) * 1000 for i, t in sent.items() if i in arrivals]
        kafka = [(floor.seen[i] - t) * 1000 for i, t in sent.items() if i in floor.seen]
        return {
            "rate": rate,
            "failing_share": failing_share,
            "delivered": len(latencies),
            "expected": len(sent),
            "p50_ms": percentile(latencies, 0.50),
            "p95_ms": percentile(latencies, 0.95),
            "p99_ms": percentile(latencies, 0.99),
            "kafka_p50_ms": percentile(kafka, 0.50),
            "kafka_p99_ms": percentile(kafka, 0.99),
            "failing_jobs": total - len(sent),
            "failed_posts": failed_posts,
            "cpu_cores": cores,
        }

    def dead_endpoint_attempts(self, minutes: float, rate: int, **overrides: Any) -> dict[str, Any]:
        """`rate` jobs/s for `minutes` to an endpoint answering 500 all along, one delivery
        worker on the default schedule (10 retries 10 s apart): the POSTs it spent on it,
        and the dead letters it made, by the end of the stage."""
        settings = self.settings(**overrides)
        topic = f"{settings.topic_prefix}webhook-jobs"
        self.start_worker(settings, "delivery")
        producer = self.producer()
        cpu = self.cpu_use()
        started = time.perf_counter()
        total = int(rate * minutes * 60)
        for n in range(total):
            job = WebhookJob(str(uuid.uuid4()), "Message", f"room-{n % 200}",
                             self.url("/fail/dead"), job_body(n), "x")  # fmt: skip
            sleep_until(started + n / rate)
            producer.produce(topic, key=job.key(), value=job.to_json())
            producer.poll(0)
        producer.flush(30)
        elapsed = time.perf_counter() - started
        cores = {name: round((used - cpu[name]) / elapsed, 2)
                 for name, used in self.cpu_use().items()}  # fmt: skip
        failed_posts = int(httpx.get(self.url("/failed"), timeout=30).json())
        dead_letters = self.records_in(f"{settings.topic_prefix}webhook-dead-letters")
        self.stop_workers()
        self.forget()
        return {
            "minutes": minutes,
            "rate": rate,
            "jobs": total,
            "failed_posts": failed_posts,
            "posts_per_job": round(failed_posts / total, 3),
            "dead_letters": dead_letters,
            "cpu_cores": cores,
        }

    def ingest_rate(self, count: int = 10_000, concurrency: int = 16) -> dict[str, Any]:
        """Rocket.Chat's side of relay mode: `count` seed Message bodies POSTed to
        `omnihooks ingest` with `concurrency` in flight, each answered once Kafka acknowledged
        it; beside the floor, the same records written straight to the broker by the same
        producer setup (acks=all, idempotent), the same number awaited at once."""
        from streams.ops.ingest import KafkaWriter

        settings = self.settings(ingest_token="bench-token")
        port = free_port()
        env = settings_env(settings)
        with open(ROOT / ".cache" / "bench-ingest.log", "ab") as log:
            ingest = subprocess.Popen(
                [sys.executable, "-m", "streams.ops.cli", "ingest", "--host", "127.0.0.1", "--port", str(port)],
                env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
            )  # fmt: skip
        self.workers.append(ingest)
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/healthz"), 60, 0.2)
        seed = codec.loads(SEED_MESSAGE.read_bytes())
        bodies = [codec.dumps({**seed, "_id": f"room-{n % 500}"}) for n in range(count)]

        async def run_http() -> tuple[float, list[float]]:
            url = f"http://127.0.0.1:{port}/rocketchat/default"
            headers = {
                "X-RocketChat-Livechat-Token": "bench-token",
                "Content-Type": "application/json",
            }
            latencies: list[float] = []
            queue = iter(bodies)
            async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=concurrency)
            ) as session:

                async def one() -> None:
                    for body in queue:
                        started = time.perf_counter()
                        async with session.post(url, data=body, headers=headers) as response:
                            await response.read()
                            assert response.status == 200, response.status
                        latencies.append((time.perf_counter() - started) * 1000)

                started = time.perf_counter()
                await asyncio.gather(*(one() for _ in range(concurrency)))
                return count / (time.perf_counter() - started), latencies

        async def run_raw() -> tuple[float, list[float]]:
            writer = KafkaWriter(settings, 30)
            latencies: list[float] = []
            queue = iter(bodies)

            async def one() -> None:
                for body in queue:
                    started = time.perf_counter()
                    await writer.write(b"room", body)
                    latencies.append((time.perf_counter() - started) * 1000)

            try:
                started = time.perf_counter()
                await asyncio.gather(*(one() for _ in range(concurrency)))
                return count / (time.perf_counter() - started), latencies
            finally:
                writer.close()

        raw_rate, raw_latencies = asyncio.run(run_raw())
        http_rate, http_latencies = asyncio.run(run_http())
        self.stop_workers()
        return {
            "count": count,
            "concurrency": concurrency,
            "ingest_per_s": round(http_rate),
            "ingest_p50_ms": percentile(http_latencies, 0.50),
            "ingest_p99_ms": percentile(http_latencies, 0.99),
            "raw_per_s": round(raw_rate),
            "raw_p50_ms": percentile(raw_latencies, 0.50),
            "raw_p99_ms": percentile(raw_latencies, 0.99),
        }

    def records_in(self, topic: str) -> int:
        consumer = self.read_from_start(topic)
        try:
            partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
            return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                       for p in partitions)  # fmt: skip
        finally:
            consumer.close()

    def floor_latency_at(self, rate: int, seconds: float) -> dict[str, float]:
        """Produce→receipt latency of jobs at `rate`/s through a Faust agent that does
        nothing but POST each one (bench/faust_floor.py): the floor under the worker's
        latency, with Kafka alone measured in the same stage."""
        settings = self.settings()
        topic = f"{settings.topic_prefix}webhook-jobs"
        total = int(rate * seconds)
        self.forget()
        self.start_floor(settings, total + 1, 0, self.url("/floor"))
        producer = self.producer()
        warm = WebhookJob(str(uuid.uuid4()), "Message", "warm", self.url("/floor"), {}, "x")
        producer.produce(topic, key=warm.key(), value=warm.to_json())
        producer.flush(10)
        wait_until(lambda: len(self.arrivals()) >= 1, 60, 0.2)
        self.forget()
        floor = KafkaArrivals(self.bootstrap, topic)
        floor.start()
        sent: dict[str, float] = {}
        started = time.perf_counter()
        for n in range(total):
            job = WebhookJob(str(uuid.uuid4()), "Message", f"room-{n % 200}",
                             self.url("/floor"), job_body(n), "x")  # fmt: skip
            sleep_until(started + n / rate)
            producer.produce(topic, key=job.key(), value=job.to_json())
            producer.poll(0)
            sent[job.delivery_id] = time.time()
        producer.flush(30)
        wait_until(lambda: len(self.arrivals()) >= len(sent), 60, 0.5)
        arrivals = dict(self.arrivals())
        floor.stop()
        self.stop_workers()
        self.forget()
        latencies = [(arrivals[i] - t) * 1000 for i, t in sent.items() if i in arrivals]
        kafka = [(floor.seen[i] - t) * 1000 for i, t in sent.items() if i in floor.seen]
        assert len(latencies) >= len(sent) * 0.99, f"floor: {len(latencies)} of {len(sent)}"
        return {
            "rate": rate,
            "p50_ms": percentile(latencies, 0.50),
            "p99_ms": percentile(latencies, 0.99),
            "kafka_p99_ms": percentile(kafka, 0.99),
        }

    def cpu_use(self) -> dict[str, float]:
        """CPU seconds used so far by each process of the benchmark, this one included."""
        this = os.times()
        use = {"worker": sum(cpu_seconds(w.pid) for w in self.workers),
               "load generator": this.user + this.system,
               "receiver": cpu_seconds(self.receiver.pid)}  # fmt: skip
        if self.broker_pid is not None:
            use["broker"] = cpu_seconds(self.broker_pid)
        return use

    def fill_room_changelogs(
        self, settings: Settings, rooms: int, messages: int
    ) -> tuple[int, dict[str, dict[bytes, bytes]]]:
        """The sessions worker's three changelogs holding `rooms` open rooms of `messages`
        (≤ 4) each, as the worker itself writes them (a template room run through
        `SessionProcessor` and `TableStore`, copied under each room id): the records
        written, and the template's tables."""
        from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

        from streams.core.table_store import TableStore

        template = "t0000000"
        tables: dict[str, dict[bytes, bytes]] = {"rooms": {}, "messages": {}, "message-order": {}}
        store_ = TableStore(tables["rooms"], tables["messages"], tables["message-order"])
        leads = compile_lead_patterns(settings.lead_email_regex, settings.lead_phone_regex)
        processor = SessionProcessor(
            settings.session_policy(), store_, leads, time.time, settings.endpoint_directory()
        )
        apply_records(processor, demo.seed_conversation(template, run=template)[: 2 + messages])
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        names = {t: f"{settings.app_id}-sessions-{t}-changelog" for t in tables}
        created = admin.create_topics(
            [
                NewTopic(n, PARTITIONS, 1, config={"cleanup.policy": "compact"})
                for n in names.values()
            ]
        )
        for future in created.values():
            future.result(30)
        producer = self.producer()
        old = template.encode()
        written = 0
        for n in range(rooms):
            room = f"r{n:07d}".encode()
            for table, rows in tables.items():
                for key, value in rows.items():
                    producer.produce(names[table], key=key.replace(old, room),
                                     value=value.replace(old, room), partition=n % PARTITIONS)  # fmt: skip
                    written += 1
            if n % 2_000 == 0:
                producer.poll(0)
        producer.flush(600)
        return written, tables

    def open_rooms(self, rooms: int, store: str, messages: int = 4) -> dict[str, float]:
        """A sessions worker whose tables hold `rooms` open rooms of `messages` (≤ 4) each, as
        the worker itself writes them (`fill_room_changelogs`): seconds from start to ready,
        and the worker's resident memory once ready."""
        settings = self.settings(store=store)
        tables = self.fill_room_changelogs(settings, rooms, messages)[1]
        if rooms == 100_000 and store == "memory":
            self.results["plain_dict_bytes_per_room"] = plain_dict_bytes_per_room(tables, rooms)
        ready_s, rss_at_ready, rss = self._time_to_ready(settings, measure_rss=True)
        log = (ROOT / ".cache" / "bench-sessions.log").read_text(errors="replace")
        native = re.findall(r"RocksDB holds index and filters ([\d.]+) MB, memtables ([\d.]+) MB, "
                            r"block cache ([\d.]+) MB", log)  # fmt: skip
        shutil.rmtree(settings.data_dir / f"{settings.app_id}-sessions", ignore_errors=True)
        floor_rss = self.recovery_floor_rss(settings) if store == "rocksdb" else None
        shutil.rmtree(settings.data_dir / f"{settings.app_id}-sessions", ignore_errors=True)
        return {
            "rooms": rooms,
            "messages_per_room": messages,
            "ready_s": round(ready_s, 2),
            "rss_mb": round(rss / 2**20, 1),
            "rss_at_ready_mb": round(rss_at_ready / 2**20, 1),
            # RocksDB's own memory as the worker logged it: index and filters, memtables, cache
            "rocksdb_mb": [float(x) for x in native[-1]] if native else None,
            # Faust alone recovering the same changelogs into the same tables, settled
            "floor_rss_mb": round(floor_rss / 2**20, 1) if floor_rss else None,
            "message_bytes_per_room": sum(len(v) for v in tables["messages"].values()),
        }

    def recovery_floor_rss(self, settings: Settings) -> int:
        """Resident bytes of Faust alone (bench/faust_floor.py "recover": the sessions worker's
        three tables, consumer group and RocksDB options, an agent doing nothing) once it has
        recovered the changelogs `settings` name and given back what it freed."""
        log_path = ROOT / ".cache" / "bench-floor.log"
        start = log_path.stat().st_size if log_path.exists() else 0

        def settled() -> bool:
            with open(log_path, "rb") as log:
                log.seek(start)
                return b"floor settled" in log.read()

        pid, _ = self.start_floor(settings, 1, "recover")
        wait_until(settled, 1800, 0.5)
        assert settled(), "the recovery floor did not settle in 30 minutes"
        rss = resident_bytes(pid, settle_s=2)
        self.stop_workers()
        return rss

    def recovery_floor_s(self, settings: Settings) -> float:
        """Seconds from start to ready of Faust alone (bench/faust_floor.py "recover")
        recovering the changelogs `settings` name: Faust's own restore speed."""
        log_path = ROOT / ".cache" / "bench-floor.log"
        log_path.unlink(missing_ok=True)
        started = time.time()
        self.start_floor(settings, 1, "recover")

        def ready() -> bool:
            return log_path.exists() and "Worker ready" in log_path.read_text(errors="replace")

        wait_until(ready, 1800, 0.1)
        elapsed = time.time() - started
        self.stop_workers()
        assert ready(), "Faust alone was not ready in 30 minutes"
        return elapsed

    def ready_s(self, settings: Settings) -> float:
        """Seconds from start to ready of a sessions worker over the changelogs it finds."""
        return float(self._time_to_ready(settings))

    def transcript_growth(self, messages: int = 10_000) -> dict[str, float]:
        """One room, `messages` messages, then its close, through one sessions worker (its
        real tables): µs per message over the first and the last 3,000 (each message's
        Message job timestamp), and the close body for the whole transcript (the close
        job's timestamp after the last message's). A window spans the worker's commit
        interval (1 s; each commit waits for the changelog writes): in a shorter window,
        whether a commit fell in it decided its figure."""
        settings = self.settings(webhook_url=self.url("/hook"), send_on_close=True,
                                 send_on_visitor_message=True, send_on_agent_message=True)  # fmt: skip
        room = "grow0000"
        records = demo.seed_conversation(room, run=room)
        lines = [demo.message_event(room, f"g{i}", f"2023-02-02T1{i // 3600 % 10}:{i // 60 % 60:02d}:{i % 60:02d}.000Z",
                                    "a typical line of chat text", i % 2 == 0, f"g{i}") for i in range(messages)]  # fmt: skip
        close = records[6]
        close.value["room"]["msgs"] = messages + 4
        producer = self.producer()
        for record in [*records[:6], *lines, close]:
            producer.produce(f"{settings.topic_prefix}{record.topic.value}", key=record.key,
                             value=record.encoded())  # fmt: skip
        producer.flush(60)
        self.start_worker(settings, "sessions")
        topic = f"{settings.topic_prefix}webhook-jobs"
        consumer = self.read_from_start(topic)
        stamps: dict[str, float] = {}
        close_at, close_size = 0.0, 0
        deadline = time.time() + 300
        while not close_at and time.time() < deadline:
            for message in consumer.consume(1000, 1.0):
                if message.error():
                    continue
                job = codec.loads(message.value())
                at = message.timestamp()[1] / 1000
                if job["type"] == "LivechatSession":
                    close_at, close_size = at, len(job["body"]["messages"])
                else:
                    stamps[job["body"]["messages"][0]["_id"]] = at
        consumer.close()
        self.stop_workers()
        assert close_at, "the 10,000-message room never closed"
        order = [stamps[f"g{i}"] for i in range(messages) if f"g{i}" in stamps]

        def per_message_us(window: list[float]) -> float:
            return round((window[-1] - window[0]) / (len(window) - 1) * 1e6, 1)

        return {
            "first_3000_us": per_message_us(order[1:3001]),
            "last_3000_us": per_message_us(order[-3000:]),
            "close_after_last_message_ms": round((close_at - order[-1]) * 1000, 1),
            "close_messages": close_size,
        }

    def _time_to_ready(self, settings: Settings, measure_rss: bool = False) -> Any:
        log_path = ROOT / ".cache" / "bench-sessions.log"
        log_path.unlink(missing_ok=True)
        started = time.time()

        def wait_for_line(text: str) -> None:  # a million rooms take minutes
            while time.time() - started < 1800:
                if log_path.exists() and text in log_path.read_text(errors="replace"):
                    return
                time.sleep(0.1)

        self.start_worker(settings, "sessions")
        wait_for_line("Worker ready")
        elapsed = time.time() - started
        assert elapsed < 1800, "the worker was not ready in 30 minutes"
        if not measure_rss:
            self.stop_workers()
            return elapsed
        # Recovery decodes every changelog record and drops it; the worker gives that memory
        # back once it has rebuilt its due-event schedule after the recovery (it logs it).
        # Memory while holding the rooms is what it keeps then; the value at ready too.
        pid = self.workers[-1].pid
        at_ready = resident_bytes(pid, settle_s=1)
        wait_for_line("due-event schedule rebuilt")
        settled = resident_bytes(pid, settle_s=2)
        self.stop_workers()
        return elapsed, at_ready, settled


def plain_dict_bytes_per_room(tables: dict[str, dict[bytes, bytes]], rooms: int) -> int:
    """The floor of the in-memory store: the same keys and values, for `rooms` rooms, in
    three plain dicts of this process (its resident memory before and after)."""
    import gc

    gc.collect()
    before = resident_bytes(os.getpid(), settle_s=0)

    def own(raw: bytes, n: int) -> bytes:  # a bytes object of its own, as each record read is
        return bytes(memoryview(raw.replace(b"t0000000", f"r{n:07d}".encode())))

    kept = [{own(key, n): own(value, n) for n in range(rooms) for key, value in rows.items()}
            for rows in tables.values()]  # fmt: skip
    grown = resident_bytes(os.getpid(), settle_s=0) - before
    del kept
    gc.collect()
    return int(grown / rooms)


def session_records(rooms: int) -> list[demo.InputRecord]:
    """The session stage's input, per room: the seed conversation's first six records, six
    more messages, then the close (about 70% messages)."""
    out = []
    for n in range(rooms):
        room = f"r{n:06d}"
        records = demo.seed_conversation(room, run=room)
        extra = [demo.message_event(room, f"{room}-x{i}", f"2023-02-02T10:17:{i:02d}.000Z",
                                    f"more {i}", i % 2 == 0, f"{room}-x{i}") for i in range(6)]  # fmt: skip
        records[6].value["room"]["msgs"] = 10
        out += [*records[:6], *extra, records[6]]
    return out


def pure_core_us_per_event(rooms: int = 3000) -> float:
    """The session stage's own work per event without Kafka or Faust, in this process:
    decode each record, apply it through `SessionProcessor` over dict tables (the worker's
    `TableStore`), and encode the jobs it makes."""
    from tests.support.memory_store import MemoryStore

    settings = load_settings(webhook_url="http://x/hook", send_on_close=True)
    leads = compile_lead_patterns(settings.lead_email_regex, settings.lead_phone_regex)
    processor = SessionProcessor(settings, MemoryStore(), leads, time.time)
    encoded = [(record.topic, record.key, record.encoded()) for record in session_records(rooms)]
    started = time.perf_counter()
    for offset, (topic, key, raw) in enumerate(encoded):
        for job in apply_raw(processor, topic, key, raw, offset):
            job.to_json()
    return (time.perf_counter() - started) / len(encoded) * 1e6


def apply_raw(
    processor: SessionProcessor, topic: Topic, key: bytes, raw: bytes, offset: int
) -> list[WebhookJob]:
    """Decode one input record as the worker does and apply it through the pure core."""
    from streams.core.events import decode_message_event, decode_room_event

    source = Source(topic.value, 0, offset)
    if topic is Topic.ROOMS:
        return processor.on_room_event(decode_room_event(key, raw, 1 << 20), source)  # type: ignore[arg-type]
    return processor.on_message_event(decode_message_event(key, raw, 1 << 20), source)


def apply_records(processor: SessionProcessor, records: list[demo.InputRecord]) -> None:
    """Run input records through the pure core, each at its offset in the list."""
    for offset, record in enumerate(records):
        apply_raw(processor, record.topic, record.key, record.encoded(), offset)


def native_mb(stage: dict[str, Any]) -> str:
    """RocksDB's own memory in an open-rooms stage, as the worker logged it."""
    parts = stage.get("rocksdb_mb")
    return f"{sum(parts):.1f}" if parts else "?"


def resident_bytes(pid: int, settle_s: float = 3) -> int:
    """A process's resident memory (VmRSS), after a moment to settle."""
    time.sleep(settle_s)
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def job_body(n: int) -> dict[str, Any]:
    """A realistic Message body (about 1 KB), as the session pipeline builds it."""
    room = {"_id": f"room-{n}", "fname": "James", "ts": "2023-02-02T10:16:07.230Z",
            "lm": "2023-02-02T10:16:09.615Z", "servedBy": demo.SERVED_BY}  # fmt: skip
    message = demo.message_event(room["_id"], f"m{n}", "2023-02-02T10:21:05.391Z",
                                 "How can I help you today?", False, f"e{n}").value["message"]  # fmt: skip
    return build_session_payload("Message", room, demo.VISITOR, demo.AGENT, [message],
                                 crm_data=None, send_navigation_history=False)  # fmt: skip


def cost_growth() -> dict[str, Any]:
    """Pure, in this process: close-body build time and state bytes against transcript size."""
    from tests.support.memory_store import MemoryStore

    settings = load_settings(webhook_url="http://x/hook", send_on_close=True)
    leads = compile_lead_patterns(settings.lead_email_regex, settings.lead_phone_regex)
    out: dict[str, Any] = {"close_body_ms": {}, "message_store_us": {}}
    for size in (10, 1_000, 10_000):
        store = MemoryStore()
        processor = SessionProcessor(
            settings.session_policy(), store, leads, time.time, settings.endpoint_directory()
        )
        room = f"grow-{size}"
        records = demo.seed_conversation(room, run=room)
        apply_records(processor, records[:2])
        started = time.perf_counter()
        for i in range(size):
            record = demo.message_event(room, f"m{i}", f"2023-02-02T10:{i // 600 % 60:02d}:{i // 10 % 60:02d}.{i % 10}00Z",
                                        "a typical line of chat text", i % 2 == 0, f"e{i}")  # fmt: skip
            apply_raw(processor, record.topic, record.key, record.encoded(), i)
        per_message_us = (time.perf_counter() - started) / size * 1e6
        state = store.load(room)
        assert state is not None
        started = time.perf_counter()
        body = build_session_payload("LivechatSession", state.room or {}, state.visitor, state.agent,
                                     store.transcript(room, state.next_seq), crm_data=None,
                                     send_navigation_history=False)  # fmt: skip
        out["close_body_ms"][str(size)] = round((time.perf_counter() - started) * 1000, 2)
        out["message_store_us"][str(size)] = round(per_message_us, 1)
        assert len(body["messages"]) == size
    # memory per open room (state + 10 messages), as the in-memory table holds bytes
    tracemalloc.start()
    store = MemoryStore()
    processor = SessionProcessor(
        settings.session_policy(), store, leads, time.time, settings.endpoint_directory()
    )
    before = tracemalloc.get_traced_memory()[0]
    from streams.core.events import decode_message_event, decode_room_event

    for n in range(2000):
        room = f"mem-{n}"
        for offset, record in enumerate(demo.seed_conversation(room, run=room)[:6]):
            raw = record.encoded()
            if record.topic.value == "rooms":
                processor.on_room_event(
                    decode_room_event(record.key, raw, 1 << 20), Source("r", 0, offset)
                )  # type: ignore[arg-type]
            else:
                processor.on_message_event(
                    decode_message_event(record.key, raw, 1 << 20), Source("m", 0, offset)
                )
    out["bytes_per_open_room_4_messages"] = int(
        (tracemalloc.get_traced_memory()[0] - before) / 2000
    )
    tracemalloc.stop()
    return out


@contextlib.contextmanager
def bench_session() -> Iterator[Bench]:
    """A Bench on KAFKA_BOOTSTRAP_SERVERS, or on a local broker started on BENCH_PORT; its
    workers, receiver and that broker are stopped at the end."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (ROOT / ".cache").mkdir(exist_ok=True)
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    broker, broker_pid = None, None
    if not bootstrap:
        broker = LocalKafka.configured(kafka_port=BENCH_PORT)
        print(broker.up(timeout_s=120, fresh=True), flush=True)
        bootstrap, broker_pid = broker.bootstrap, broker.running_pid()
    bench = Bench(bootstrap, broker_pid)
    try:
        yield bench
    finally:
        bench.close()
        if broker is not None:
            broker.down()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


DEAD_ENDPOINT_MINUTES = 10
DEAD_ENDPOINT_RATE = 20  # jobs/s to the dead endpoint: a CRM with a busy day's traffic


def isolation_trials(bench: Bench, step: Callable[[str], None], floor: bool) -> list[Any]:
    """Three paired trials at 1,000 jobs/s (30 s each): clean, then 30% of jobs failing,
    then (`floor`) the Faust+POST latency floor."""
    trials = []
    for trial in range(1, 4):
        step(f"latency at 1000/s, trial {trial} of 3: clean, 30% of jobs failing"
             + (", then the Faust+POST floor" if floor else "") + " (30 s each)")  # fmt: skip
        clean = bench.latency_at(1000, ISOLATION_STAGE_S)
        isolation = bench.latency_at(1000, ISOLATION_STAGE_S, failing_share=0.3)
        entry = {"clean": clean, "isolation": isolation}
        if floor:
            entry["floor"] = bench.floor_latency_at(1000, ISOLATION_STAGE_S)
        trials.append(entry)
    return trials


def endpoint_health_stages(bench: Bench, r: dict[str, Any], step: Callable[[str], None]) -> None:
    """Issue 17's figures: attempts on a dead endpoint over 10 minutes with and without the
    breaker, and ordered delivery's cost beside unordered (3 paired trials)."""
    r["dead_endpoint"] = {}
    for name, breaker in (("breaker", True), ("no_breaker", False)):
        step(f"{DEAD_ENDPOINT_MINUTES} minutes of {DEAD_ENDPOINT_RATE} jobs/s to a dead endpoint, "
             f"circuit breaker {'on' if breaker else 'off'}")  # fmt: skip
        r["dead_endpoint"][name] = bench.dead_endpoint_attempts(
            DEAD_ENDPOINT_MINUTES, DEAD_ENDPOINT_RATE, breaker=breaker
        )
    r["ordered_trials"] = []
    for trial in range(1, 4):
        step(f"ordered delivery, trial {trial} of 3: 20,000 numbered jobs of 500 rooms, "
             "OMNIHOOKS_DELIVERY_ORDER=none then room")  # fmt: skip
        unordered = bench.delivery_throughput(numbered=True, delivery_order="none")[0]
        ordered = bench.delivery_throughput(numbered=True, delivery_order="room")[0]
        r["ordered_trials"].append({"none_per_s": round(unordered), "room_per_s": round(ordered)})


def baseline_tree(ref: str) -> Path:
    """A worktree of `ref` (git-ignored, under .cache), for workers of that version."""
    path = ROOT / ".cache" / f"ab-{ref}"
    if not path.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(path), ref],
                       cwd=ROOT, check=True, capture_output=True)  # fmt: skip
    return path


def sessions_ab(bench: Bench, ref: str, pairs: int, step: Callable[[str], None]) -> dict[str, Any]:
    """The session stage's throughput, this checkout's workers against `ref`'s, alternating
    in one broker session so both meet the same machine: pairs of (baseline, this)."""
    baseline = baseline_tree(ref)
    trials = []
    for n in range(pairs):
        rates = {}
        for name, source in (
            (("baseline", baseline), ("this", None))
            if n % 2 == 0
            else (("this", None), ("baseline", baseline))
        ):
            bench.worker_source = source
            step(f"sessions A/B pair {n + 1}/{pairs}: {name}")
            rates[name] = round(bench.session_throughput()[0])
        bench.worker_source = None
        trials.append({**rates, "ratio": round(rates["this"] / rates["baseline"], 3)})
    ratios = sorted(trial["ratio"] for trial in trials)
    return {"against": ref, "pairs": trials, "median_ratio": ratios[len(ratios) // 2]}


def main() -> int:
    parser = argparse.ArgumentParser(description="omnihooks benchmark (README, Benchmark)")
    parser.add_argument(
        "--only", choices=["endpoint-health", "ingest", "sessions-ab", "live"],
        help="endpoint-health: only issue 17's stages (isolation, dead-endpoint attempts, "
             "ordered delivery; about 30 minutes) into bench/results/endpoint-health.{json,md}; "
             "ingest: only relay mode's ingest stage (a minute) into bench/results/ingest.{json,md}; "
             "sessions-ab: the session stage, this checkout against --against, in pairs, "
             "into bench/results/sessions-ab.json; live: live visitor messages end to end at "
             "30 and 1,000/s beside Kafka alone, into bench/results/live.json",
    )  # fmt: skip
    parser.add_argument("--against", default="HEAD~1", help="sessions-ab: the git ref to compare")
    parser.add_argument("--pairs", type=int, default=6, help="sessions-ab: trial pairs")
    args = parser.parse_args()
    if not SEED_MESSAGE.is_file():  # the ingest stage's body, read late in a full run
        parser.error(f"{SEED_MESSAGE} is missing: the ingest stage posts it")
    r: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                         "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"}  # fmt: skip
    with bench_session() as bench:

        def step(name: str) -> None:
            # partial results survive a failing later stage
            (RESULTS / "partial.json").write_text(codec.dumps_pretty(r) + "\n")
            print(f"[{time.strftime('%H:%M:%S')}] {name}", flush=True)

        if args.only == "live":
            step("warm-up: a fresh broker took about a core for its first minute")
            bench.delivery_throughput(count=10_000)
            r["live"] = []
            for rate, seconds, roles in ((30, 60, ("all",)), (1000, 30, ("all",)),
                                         (1000, 30, ("sessions", "delivery"))):  # fmt: skip
                step(f"live messages at {rate}/s for {seconds} s, workers {'+'.join(roles)}")
                r["live"].append({"workers": "+".join(roles),
                                  **bench.live_latency_at(rate, seconds, roles=roles)})  # fmt: skip
            (RESULTS / "live.json").write_text(codec.dumps_pretty(r) + "\n")
            print(codec.dumps_pretty(r["live"]))
            return 0
        if args.only == "sessions-ab":
            step("warm-up: a fresh broker took about a core for its first minute")
            bench.delivery_throughput(count=10_000)
            r["sessions_ab"] = sessions_ab(bench, args.against, args.pairs, step)
            (RESULTS / "sessions-ab.json").write_text(codec.dumps_pretty(r) + "\n")
            print(codec.dumps_pretty(r["sessions_ab"]))
            return 0
        if args.only == "ingest":
            step("warm-up: a fresh broker took about a core for its first minute")
            bench.delivery_throughput(count=10_000)
            step("relay mode: omnihooks ingest beside a raw produce, 16 in flight")
            r["ingest"] = bench.ingest_rate()
            (RESULTS / "ingest.json").write_text(codec.dumps_pretty(r) + "\n")
            markdown = render_ingest(r)
            (RESULTS / "ingest.md").write_text(markdown)
            print(markdown)
            return 0
        if args.only == "endpoint-health":
            step("warm-up: a fresh broker took about a core for its first minute")
            bench.delivery_throughput(count=10_000)
            r["latency_trials"] = isolation_trials(bench, step, floor=False)
            step("latency at 1000/s, 30% of jobs failing, circuit breaker off (30 s)")
            r["latency_isolation_no_breaker"] = bench.latency_at(
                1000, ISOLATION_STAGE_S, failing_share=0.3, breaker=False
            )
            endpoint_health_stages(bench, r, step)
            (RESULTS / "endpoint-health.json").write_text(codec.dumps_pretty(r) + "\n")
            markdown = render_endpoint_health(r)
            (RESULTS / "endpoint-health.md").write_text(markdown)
            print(markdown)
            return 0

        step("warm-up: a fresh broker took about a core for its first minute")
        bench.delivery_throughput(count=10_000)
        step("ceiling: raw aiohttp POSTs")
        r["ceiling_post_per_s"] = round(bench.ceiling_post())
        step("delivery throughput, 1 worker (and raw consume ceiling)")
        delivery, consume = bench.delivery_throughput()
        r["delivery_per_s"], r["ceiling_consume_per_s"] = round(delivery), round(consume)
        step("delivery throughput, 2 workers")
        r["delivery_2_workers_per_s"] = round(bench.delivery_throughput(workers=2)[0])
        r["faust_floor_per_s"] = {}
        for writes in (0, 1, 3, "3d"):
            step(f"Faust alone: an agent writing {writes} table keys per event")
            r["faust_floor_per_s"][str(writes)] = round(bench.faust_floor(writes))
        step("Faust alone: an agent POSTing each event, nothing else")
        r["faust_post_floor_per_s"] = round(bench.faust_floor(0, post=True))
        bench.forget()
        # The session goal is a ratio of two short stages that each swing from one stage to
        # the next, and further between runs a day apart (docs/history.md): three paired
        # trials, the do-nothing floor right before the pipeline, and the median ratio.
        r["session_trials"] = []
        for trial in range(1, 4):
            step(f"session pipeline, trial {trial} of 3: the do-nothing Faust floor, then 1 worker")
            floor_now = round(bench.faust_floor(0))
            sessions, events = bench.session_throughput()
            r["session_trials"].append(
                {"floor_per_s": floor_now, "sessions_per_s": round(sessions)}
            )
        middle = median_trial(r["session_trials"], session_ratio)
        r["session_events_per_s"], r["session_events"] = middle["sessions_per_s"], events
        r["session_floor_per_s"] = middle["floor_per_s"]
        r["session_core_us_per_event"] = round(pure_core_us_per_event(), 1)
        step("session pipeline throughput, 2 workers")
        r["session_2_workers_events_per_s"] = round(bench.session_throughput(workers=2)[0])
        step("session pipeline throughput without the order merge (Faust's fetch order)")
        r["session_events_per_s_no_merge"] = round(bench.session_throughput(merge=False)[0])
        r["session_latency"] = {}
        for name, order in (
            ("merge, grace 1 s (default)", {}),
            ("no merge", {"order_merge": False}),
        ):
            step(f"session latency at 1000 events/s: {name}")
            r["session_latency"][name] = [bench.session_latency_at(1000, 10, **order)]
        r["latency"] = []
        for rate in (250, 500):
            step(f"latency at {rate}/s")
            r["latency"].append(bench.latency_at(rate, 10))
        # A p99 over 10 s swings with the broker's own (Kafka alone moves from one stage to
        # the next), and a failing job's first retry is due 10 s after it: the two
        # latency goals take the median of three paired trials of 30 s each (retries fire
        # twice within the failing stage), a clean stage and right after it one with 30% of
        # jobs failing.
        r["latency_trials"] = isolation_trials(bench, step, floor=True)
        step("latency at 1000/s, 30% of jobs failing, circuit breaker off (30 s)")
        r["latency_isolation_no_breaker"] = bench.latency_at(
            1000, ISOLATION_STAGE_S, failing_share=0.3, breaker=False
        )
        middle = median_trial(r["latency_trials"], kafka_ratio)
        r["latency"].append(middle["clean"])
        step("latency at 1000/s without the settled-jobs table")
        r["latency_unsettled"] = bench.latency_at(1000, 10, settled_retention_s=0)
        step("Faust alone: CPU of an agent doing nothing at 1000 events/s")
        r["faust_floor_cores_at_1000"] = bench.faust_floor_cpu(1000, 10)
        r["latency_isolation"] = median_trial(r["latency_trials"], isolation_ratio)["isolation"]
        step("cost growth (pure core)")
        r["cost"] = cost_growth()
        step("a 10,000-message room through a worker")
        r["transcript"] = bench.transcript_growth()
        r["open_rooms"] = {"memory": [], "rocksdb": []}
        # Recovery reads every changelog record, so a million rooms of four messages (9M
        # records) would take three times as long to recover as rooms of one (3 records a
        # room): the disk store's rooms hold one message each, at every size alike.
        for store, messages, counts in (("memory", 4, (0, 10_000, 100_000)),
                                        ("rocksdb", 1, (0, 10_000, 100_000, 1_000_000))):  # fmt: skip
            for rooms in counts:
                step(f"open rooms: {rooms:,} of {messages} messages on the {store} store")
                r["open_rooms"][store].append(bench.open_rooms(rooms, store, messages))
        r["plain_dict_bytes_per_room"] = bench.results["plain_dict_bytes_per_room"]
        endpoint_health_stages(bench, r, step)
        step("relay mode: omnihooks ingest beside a raw produce, 16 in flight")
        r["ingest"] = bench.ingest_rate()
    (RESULTS / "latest.json").write_text(codec.dumps_pretty(r) + "\n")
    markdown = render(r) + "\n" + render_endpoint_health(r) + "\n" + render_ingest(r)
    (RESULTS / "latest.md").write_text(markdown)
    plot(r)
    print(markdown)
    return 0


def kafka_ratio(trial: dict[str, Any]) -> float:
    """A trial's clean p99 over the p99 of Kafka alone in the same stage."""
    clean = trial["clean"]
    return float(clean["p99_ms"] / clean["kafka_p99_ms"])


def floor_ratio(trial: dict[str, Any]) -> float:
    """A trial's Faust+POST floor p99 over the p99 of Kafka alone in the floor's stage."""
    floor = trial["floor"]
    return float(floor["p99_ms"] / floor["kafka_p99_ms"])


def isolation_ratio(trial: dict[str, Any]) -> float:
    """A trial's healthy p99 with 30% of jobs failing over its clean p99."""
    return float(trial["isolation"]["p99_ms"] / trial["clean"]["p99_ms"])


def session_ratio(trial: dict[str, Any]) -> float:
    """A trial's session pipeline rate over the do-nothing floor measured just before it."""
    return float(trial["sessions_per_s"] / trial["floor_per_s"])


def median_trial(
    trials: list[dict[str, Any]], ratio: Callable[[dict[str, Any]], float]
) -> dict[str, Any]:
    """The trial whose `ratio` is the median of the trials' (an odd number of them)."""
    return sorted(trials, key=ratio)[len(trials) // 2]


def render(r: dict[str, Any]) -> str:
    """Two tables: each goal of issue 15 beside its figure, the ceiling or floor measured in
    the same run, and met/not met; then every figure itself."""
    by_rate = {x["rate"]: x for x in r["latency"]}
    clean, iso_, unsettled = by_rate[1000], r["latency_isolation"], r["latency_unsettled"]
    no_breaker = r["latency_isolation_no_breaker"]
    post, floor = r["ceiling_post_per_s"], r["faust_floor_per_s"]
    post_floor = r["faust_post_floor_per_s"]
    delivery, sessions = r["delivery_per_s"], r["session_events_per_s"]
    trials = r["latency_trials"]
    iso_trial = median_trial(trials, isolation_ratio)
    iso_clean, iso_ratio = iso_trial["clean"], isolation_ratio(iso_trial)
    p99_ratio = kafka_ratio(median_trial(trials, kafka_ratio))
    iso_each = ", ".join(f"{isolation_ratio(t):.1f}×" for t in trials)
    kafka_each = ", ".join(f"{kafka_ratio(t):.1f}×" for t in trials)
    floor_text = ""
    if all("floor" in t for t in trials):
        floor_trial = median_trial(trials, floor_ratio)["floor"]
        floor_each = ", ".join(f"{floor_ratio(t):.1f}×" for t in trials)
        floor_text = (
            f". Floor: a Faust agent doing nothing but POST each job, same rate, same trials: "
            f"p99 {floor_trial['p99_ms']:.0f} ms = {floor_ratio(median_trial(trials, floor_ratio)):.1f}× "
            f"Kafka alone in its stage ({floor_trial['kafka_p99_ms']:.0f} ms; trials {floor_each})"
        )
    memory = {x["rooms"]: x for x in r["open_rooms"]["memory"]}
    disk = {x["rooms"]: x for x in r["open_rooms"]["rocksdb"]}
    per_room = (memory[100_000]["rss_mb"] - memory[10_000]["rss_mb"]) * 2**20 / 90_000
    message_bytes = memory[100_000]["message_bytes_per_room"]
    overhead = per_room - message_bytes
    flat = disk[1_000_000]["rss_mb"] / disk[10_000]["rss_mb"]
    floor_flat = disk[1_000_000]["floor_rss_mb"] / disk[10_000]["floor_rss_mb"]
    grow = r["transcript"]
    core_us = r["session_core_us_per_event"]
    session_floor = r["session_floor_per_s"]
    session_each = ", ".join(f"{session_ratio(t):.0%}" for t in r["session_trials"])
    with_core = 1 / (1 / floor["3d"] + core_us / 1e6)

    def met(ok: bool) -> str:
        return "met" if ok else "**not met**"

    targets = [
        ("delivery, 1 worker", f"{delivery:,} jobs/s = {delivery / post:.0%} of the POST ceiling",
         f"raw POST ceiling {post:,}/s. Floor: a Faust agent doing nothing but one POST per event "
         f"{post_floor:,}/s = {post_floor / post:.0%}; doing nothing at all {floor['0']:,}/s = {floor['0'] / post:.0%}",
         "≥ 60% of the POST ceiling", met(delivery >= 0.6 * post)),
        ("session pipeline, 1 worker",
         f"{sessions:,} events/s = {sessions / session_floor:.0%} of the Faust floor (median of 3 paired trials: {session_each})",
         f"Faust agent doing nothing, just before: {session_floor:,}/s. Floor: the same agent writing 3 keys per event "
         f"through the engine's DirectTable as the session tables write (deferred to the commit; two keys new per event, one per room) {floor['3d']:,}/s = {floor['3d'] / floor['0']:.0%}; "
         f"through Faust's tables {floor['3']:,}/s = {floor['3'] / floor['0']:.0%}. The DirectTable floor plus the pure "
         f"core's own work per event ({core_us:.0f} µs, no Kafka): {with_core:,.0f}/s = {with_core / floor['0']:.0%}",
         "≥ 50% of the do-nothing floor", met(sessions >= 0.5 * session_floor)),
        ("isolation: 30% of jobs to a failing endpoint",
         f"healthy p99 {iso_['p99_ms']:.0f} ms = {iso_ratio:.1f}× the clean p99 of its trial (median of 3 paired trials: {iso_each})",
         f"clean p99 {iso_clean['p99_ms']:.0f} ms at 1,000 jobs/s, the stage just before; Kafka alone in the failing stage p99 "
         f"{iso_['kafka_p99_ms']:.0f} ms. POSTs to the failing endpoint in the stage: {iso_['failed_posts']:,} for "
         f"{iso_['failing_jobs']:,} jobs with the circuit breaker (default); without it (OMNIHOOKS_BREAKER=false) "
         f"{no_breaker['failed_posts']:,}, healthy p99 {no_breaker['p99_ms']:.0f} ms = "
         f"{no_breaker['p99_ms'] / iso_clean['p99_ms']:.1f}× the same clean p99",
         "≤ 2× the clean p99", met(iso_ratio <= 2)),
        ("delivery latency at 1,000 jobs/s",
         f"p99 {clean['p99_ms']:.0f} ms = {p99_ratio:.1f}× Kafka alone (median of 3 trials: {kafka_each})",
         f"Kafka alone (produce → plain consumer) p99 {clean['kafka_p99_ms']:.0f} ms. Without the settled-jobs "
         f"table (OMNIHOOKS_SETTLED_RETENTION_S=0): p99 {unsettled['p99_ms']:.0f} ms = "
         f"{unsettled['p99_ms'] / unsettled['kafka_p99_ms']:.1f}× its Kafka alone ({unsettled['kafka_p99_ms']:.0f} ms)"
         + floor_text, "≤ 2× Kafka alone", met(p99_ratio <= 2)),
        ("memory per open room, in-memory store (worker RSS, 10k → 100k rooms)",
         f"{per_room:,.0f} B per room = {message_bytes:,} B of its 4 messages + {overhead:,.0f} B",
         f"worker RSS {memory[10_000]['rss_mb']} MB at 10k, {memory[100_000]['rss_mb']} MB at 100k; empty {memory[0]['rss_mb']} MB. "
         f"Floor: the same keys and values in plain dicts {r['plain_dict_bytes_per_room']:,} B per room "
         f"= {message_bytes:,} + {r['plain_dict_bytes_per_room'] - message_bytes:,} B",
         "≤ 4 KB per room + its messages' bytes", met(overhead <= 4096)),
        ("memory with the RocksDB store, 10k → 1M open rooms (1 message each)", f"{flat:.2f}× ({disk[10_000]['rss_mb']} → {disk[1_000_000]['rss_mb']} MB)",
         f"100k rooms: {disk[100_000]['rss_mb']} MB; empty {disk[0]['rss_mb']} MB. Settled: once the worker has given back what recovery decoded; "
         f"at ready: {disk[10_000]['rss_at_ready_mb']} → {disk[1_000_000]['rss_at_ready_mb']} MB. "
         f"RocksDB's own (index and filters, memtables, block cache): {native_mb(disk[10_000])} → {native_mb(disk[1_000_000])} MB. "
         f"Floor: Faust alone recovering the same changelogs into the same RocksDB tables (an agent doing nothing), settled: "
         f"{disk[10_000]['floor_rss_mb']} → {disk[1_000_000]['floor_rss_mb']} MB = {floor_flat:.2f}×",
         "flat: within 20%", met(flat <= 1.2)),
        ("storing a message as one room's transcript grows to 10,000 (worker)",
         f"{grow['first_3000_us']:.0f} µs per message over the first 3,000, {grow['last_3000_us']:.0f} µs over the last",
         f"close body of {grow['close_messages']:,} messages out {grow['close_after_last_message_ms']:.0f} ms after the last message's job",
         "flat (≤ 2× from first to last)", met(grow["last_3000_us"] <= 2 * grow["first_3000_us"])),
        ("two workers on this machine", f"delivery {r['delivery_2_workers_per_s']:,} jobs/s; sessions {r['session_2_workers_events_per_s']:,} events/s",
         f"one worker: delivery {delivery:,}/s, sessions {sessions:,}/s", "reported", "—"),
    ]  # fmt: skip
    store_us = r["cost"]["message_store_us"]
    figures = [
        ("raw aiohttp POST to the bench receiver (ceiling)", f"{post:,}/s"),
        ("raw consume of the jobs topic (ceiling)", f"{r['ceiling_consume_per_s']:,}/s"),
        ("Faust alone: agent doing nothing", f"{floor['0']:,} events/s"),
        ("Faust alone: agent writing 1 table key per event (Faust's table)", f"{floor['1']:,} events/s"),
        ("Faust alone: agent writing 3 table keys per event (Faust's table)", f"{floor['3']:,} events/s"),
        ("Faust alone: agent writing 3 table keys per event (engine DirectTable)", f"{floor['3d']:,} events/s"),
        ("Faust alone: agent POSTing each event, nothing else", f"{post_floor:,}/s"),
        *[(f"delivery latency at {x['rate']}/s", f"p50 {x['p50_ms']:.1f} / p95 {x['p95_ms']:.1f} / p99 {x['p99_ms']:.1f} ms")
          for x in r["latency"]],
        *[(f"Kafka alone at {x['rate']}/s (produce → plain consumer)",
           f"p50 {x['kafka_p50_ms']:.1f} / p99 {x['kafka_p99_ms']:.1f} ms") for x in r["latency"]],
        *[(f"CPU in use at {x['rate']}/s (cores, of {os.cpu_count()})", cores(x["cpu_cores"])) for x in r["latency"]],
        ("Faust alone: CPU of an agent doing nothing at 1000 events/s", f"{r['faust_floor_cores_at_1000']:.2f} cores"),
        ("delivery latency at 1000/s without the settled-jobs table",
         f"p50 {unsettled['p50_ms']:.1f} / p95 {unsettled['p95_ms']:.1f} / p99 {unsettled['p99_ms']:.1f} ms"),
        ("1000/s with 30% of jobs failing", f"healthy p50 {iso_['p50_ms']:.1f} / p95 {iso_['p95_ms']:.1f} / p99 {iso_['p99_ms']:.1f} ms"),
        ("CPU in use, 30% of jobs failing (cores)", cores(iso_["cpu_cores"])),
        ("1000/s with 30% of jobs failing, circuit breaker off", f"healthy p50 {no_breaker['p50_ms']:.1f} / p95 {no_breaker['p95_ms']:.1f} / p99 {no_breaker['p99_ms']:.1f} ms; "
         f"{no_breaker['failed_posts']:,} failed POSTs for {no_breaker['failing_jobs']:,} failing jobs (with the breaker: {iso_['failed_posts']:,})"),
        ("CPU in use, 30% of jobs failing, circuit breaker off (cores)", cores(no_breaker["cpu_cores"])),
        ("session pipeline without the order merge (Faust's fetch order)", f"{r['session_events_per_s_no_merge']:,} events/s"),
        *[(f"session latency at {x['rate']} events/s, {name} (message produced → its Message job)",
           f"p50 {x['p50_ms']:.0f} / p99 {x['p99_ms']:.0f} ms")
          for name, runs in r["session_latency"].items() for x in runs],
        *[(f"pure core: close body, {n} messages", f"{ms} ms") for n, ms in r["cost"]["close_body_ms"].items()],
        *[(f"pure core: store one message, transcript {n}", f"{us} µs") for n, us in store_us.items()],
        *[(f"{store} store, {x['rooms']:,} open rooms ({x['messages_per_room']} messages each)",
           f"start → ready (recovery) {x['ready_s']} s; worker RSS {x['rss_mb']} MB settled, {x['rss_at_ready_mb']} MB at ready"
           + (f"; Faust alone recovering them {x['floor_rss_mb']} MB settled" if x.get("floor_rss_mb") else ""))
          for store, runs in r["open_rooms"].items() for x in runs],
    ]  # fmt: skip
    lines = [f"# omnihooks benchmark — {r['date']}", "", f"Machine: {r['machine']}.", "",
             "| goal (issue 15) | measured | ceiling or floor, same run | target | |", "|---|---|---|---|---|"]  # fmt: skip
    lines += [f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in targets]
    lines += ["", "| figure | measured |", "|---|---|"]
    lines += [f"| {a} | {b} |" for a, b in figures]
    return "\n".join(lines) + "\n"


def ordered_ratio(trial: dict[str, Any]) -> float:
    return float(trial["room_per_s"] / trial["none_per_s"])


def render_endpoint_health(r: dict[str, Any]) -> str:
    """Issue 17's goals beside their figures, all from the same run."""
    trials = r["latency_trials"]
    iso_trial = median_trial(trials, isolation_ratio)
    iso_, iso_clean, iso_ratio = (
        iso_trial["isolation"],
        iso_trial["clean"],
        isolation_ratio(iso_trial),
    )
    no_breaker = r["latency_isolation_no_breaker"]
    dead, dead_off = r["dead_endpoint"]["breaker"], r["dead_endpoint"]["no_breaker"]
    ordered = median_trial(r["ordered_trials"], ordered_ratio)
    each = ", ".join(f"{ordered_ratio(t):.0%}" for t in r["ordered_trials"])
    iso_each = ", ".join(f"{isolation_ratio(t):.1f}×" for t in trials)

    def met(ok: bool) -> str:
        return "met" if ok else "**not met**"

    rows = [
        ("isolation, circuit breaker on", f"healthy p99 {iso_['p99_ms']:.0f} ms = {iso_ratio:.1f}× the clean p99 (median of 3 paired trials: {iso_each})",
         f"clean p99 {iso_clean['p99_ms']:.0f} ms, 1,000 jobs/s, 30% to an endpoint answering 500; breaker off: healthy p99 "
         f"{no_breaker['p99_ms']:.0f} ms = {no_breaker['p99_ms'] / iso_clean['p99_ms']:.1f}×, {no_breaker['failed_posts']:,} failed POSTs "
         f"in 30 s against {iso_['failed_posts']:,}", "≤ 2× clean", met(iso_ratio <= 2)),
        (f"attempts on a dead endpoint over {dead['minutes']:g} minutes ({dead['rate']} jobs/s, {dead['jobs']:,} jobs)",
         f"breaker on: {dead['failed_posts']:,} POSTs ({dead['posts_per_job']:.3f} per job), {dead['dead_letters']:,} dead letters",
         f"breaker off: {dead_off['failed_posts']:,} POSTs ({dead_off['posts_per_job']:.2f} per job), {dead_off['dead_letters']:,} dead letters; "
         f"the worker used {dead['cpu_cores']['worker']:.2f} of a core with the breaker, {dead_off['cpu_cores']['worker']:.2f} without", "reported", "—"),
        ("ordered delivery's cost (20,000 numbered jobs, 500 rooms, 1 worker)",
         f"room: {ordered['room_per_s']:,} jobs/s = {ordered_ratio(ordered):.0%} of none (median of 3 paired trials: {each})",
         f"none, the same jobs, just before: {ordered['none_per_s']:,} jobs/s", "reported", "—"),
    ]  # fmt: skip
    lines = [f"# omnihooks endpoint health and order — {r['date']}", "", f"Machine: {r['machine']}.", "",
             "| goal (issue 17) | measured | same run | target | |", "|---|---|---|---|---|"]  # fmt: skip
    lines += [f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in rows]
    return "\n".join(lines) + "\n"


def render_ingest(r: dict[str, Any]) -> str:
    i = r["ingest"]
    return "\n".join([
        f"# omnihooks relay ingest — {r['date']}", "", f"Machine: {r['machine']}.", "",
        "| figure (issue 18) | omnihooks ingest | raw produce, same run | ratio |", "|---|---|---|---|",
        f"| requests/s, {i['concurrency']} in flight, {i['count']:,} seed Message bodies | {i['ingest_per_s']:,}/s | "
        f"{i['raw_per_s']:,}/s | {i['ingest_per_s'] / i['raw_per_s']:.0%} |",
        f"| time to 200 (to the acknowledgement), p50 / p99 | {i['ingest_p50_ms']:.1f} / {i['ingest_p99_ms']:.1f} ms | "
        f"{i['raw_p50_ms']:.1f} / {i['raw_p99_ms']:.1f} ms | p99 {i['ingest_p99_ms'] / i['raw_p99_ms']:.1f}× |",
    ]) + "\n"  # fmt: skip


def cores(use: dict[str, float]) -> str:
    return (
        ", ".join(f"{name} {n:.2f}" for name, n in use.items())
        + f"; {sum(use.values()):.2f} in all"
    )


def plot(r: dict[str, Any]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    rates = [x["rate"] for x in r["latency"]]
    fig, ax = plt.subplots(figsize=(6, 4))
    for key in ("p50_ms", "p95_ms", "p99_ms"):
        ax.plot(rates, [x[key] for x in r["latency"]], marker="o", label=key.replace("_ms", ""))
    ax.set_xlabel("jobs/s offered")
    ax.set_ylabel("produce → receipt (ms)")
    ax.set_title("omnihooks delivery latency, 1 worker")
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "latency.png", dpi=100)


if __name__ == "__main__":
    sys.exit(main())

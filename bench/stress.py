"""Loss under rebalances and kills, with one core taken by a busy loop (not part of CI).

    .venv/bin/python -m bench.stress [--runs 30] [--kills 20]

1. `--runs` times the scaling scenario: conversations keep flowing while 1 worker becomes 3,
   one is stopped with SIGTERM and one with SIGKILL.
2. One worker SIGKILLed `--kills` times at random instants of a conversation stream, each time
   restarted at once.

Every conversation is the seed's (two visitor `Message` webhooks and a close carrying 4
messages). Per run it prints rooms, webhooks, missing messages (in closes), missing webhooks
and duplicates (the same `webhook-id` received again) per kill beside their bound; then the
totals. Target: 0 missing, duplicates within the bound.

The duplicate bound (docs/design/delivery.md, "The settled-jobs table"): a job read again
after a crash is not POSTed again once its outcome is on the settled-jobs changelog, so a kill
repeats only the POSTs in flight at that instant: at most OMNIHOOKS_DELIVERY_CONCURRENCY, and
about (webhooks/s x POST time) on average. A SIGTERM or a rebalance repeats none.
Uses its own local broker on port 19492 unless KAFKA_BOOTSTRAP_SERVERS is set.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import signal
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from streams.dev.local_kafka import LocalKafka  # noqa: E402
from streams.ops.topic_admin import apply_catalogue  # noqa: E402
from streams.settings import Settings, load_settings  # noqa: E402
from tests.integration.test_scaling import ConversationStream  # noqa: E402
from tests.support.harness import WorkerProcess  # noqa: E402
from tests.support.receiver import Receiver  # noqa: E402
from topics.catalogue import load_catalogue  # noqa: E402

STRESS_PORT = 19492
PARTITIONS = 4
EXPECTED = ["LivechatSession", "Message", "Message"]
DUPLICATE_BOUND = load_settings().delivery_concurrency  # POSTs in flight at a kill, at most


@dataclass
class Outcome:
    name: str
    rooms: int
    webhooks: int
    missing_messages: int
    missing_webhooks: int
    duplicates: int
    kills: int

    def line(self) -> str:
        per_kill = (f" ({self.duplicates / self.kills:.1f} per kill, bound {DUPLICATE_BOUND})"
                    if self.kills else "")  # fmt: skip
        return (f"{self.name:18} rooms {self.rooms:4}  webhooks {self.webhooks:5}  missing messages "
                f"{self.missing_messages:3}  missing webhooks {self.missing_webhooks:3}  "
                f"duplicates {self.duplicates:4}{per_kill}")  # fmt: skip


def busy_loop(stop_at: float) -> None:
    while time.time() < stop_at:
        pass


class Stress:
    def __init__(self, bootstrap: str, workdir: Path) -> None:
        self.bootstrap = bootstrap
        self.workdir = workdir

    def settings(self, receiver: Receiver) -> Settings:
        prefix = f"s{uuid.uuid4().hex[:8]}."
        apply_catalogue(self.bootstrap, load_catalogue(PARTITIONS), prefix)
        return load_settings(
            kafka_bootstrap_servers=self.bootstrap, topic_prefix=prefix,
            app_id=f"stress-{prefix.strip('.')}", partitions=PARTITIONS,
            data_dir=self.workdir / prefix, web_enabled=False, session_timeout_s=6.0,
            webhook_url=receiver.url("/ok"), send_on_close=True, send_on_visitor_message=True,
            compat="rocketchat-7",  # a visitor Message needs no agent setting
        )  # fmt: skip

    def worker(self, settings: Settings, n: int) -> WorkerProcess:
        log = self.workdir / f"{settings.topic_prefix}worker-{n}.log"
        return WorkerProcess(settings, "all", log).start()

    def start(self, pause_s: float) -> tuple[Receiver, Settings, WorkerProcess, ConversationStream]:
        """A receiver, one ready worker, and conversations flowing `pause_s` apart."""
        receiver = Receiver().start()
        settings = self.settings(receiver)
        worker = self.worker(settings, 0)
        worker.wait_for_log("Worker ready", timeout_s=90)
        stream = ConversationStream(_Broker(self.bootstrap), settings.topic_prefix, pause_s)
        stream.start()
        return receiver, settings, worker, stream

    def scaling(self, run: int) -> Outcome:
        receiver, settings, first, stream = self.start(pause_s=0.2)
        workers = [first]
        try:
            time.sleep(6)
            workers += [self.worker(settings, 1), self.worker(settings, 2)]
            time.sleep(15)
            workers[1].stop(signal.SIGTERM)
            time.sleep(8)
            workers[2].stop(signal.SIGKILL)
            time.sleep(8)
        finally:
            stream.stop()
        outcome = self.check(f"scaling run {run}", receiver, sorted(stream.closed_at), kills=1)
        for worker in workers:
            worker.stop()
        receiver.stop()
        return outcome

    def kills(self, count: int, seed: int) -> Outcome:
        rng = random.Random(seed)
        receiver, settings, worker, stream = self.start(pause_s=0.1)
        try:
            for n in range(count):
                time.sleep(rng.uniform(1.0, 5.0))
                worker.stop(signal.SIGKILL)
                worker = self.worker(settings, n + 1)
        finally:
            stream.stop()
        outcome = self.check(f"{count} random kills", receiver, sorted(stream.closed_at), count)
        worker.stop()
        receiver.stop()
        return outcome

    def check(self, name: str, receiver: Receiver, rooms: list[str], kills: int) -> Outcome:
        wanted = len(EXPECTED) * len(rooms)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if len({r.headers["webhook-id"] for r in receiver.at("/ok")}) >= wanted:
                break
            time.sleep(1)
        time.sleep(3)  # late duplicates still count
        got = receiver.at("/ok")
        unique = {r.headers["webhook-id"]: r.json() for r in got}
        by_room: dict[str, list[dict[str, object]]] = {}
        for body in unique.values():
            by_room.setdefault(str(body["_id"]), []).append(body)
        missing_webhooks = missing_messages = 0
        for room in rooms:
            bodies = by_room.get(room, [])
            types = sorted(str(b["type"]) for b in bodies)
            missing_webhooks += sum(
                max(0, EXPECTED.count(t) - types.count(t)) for t in set(EXPECTED)
            )
            for close in (b for b in bodies if b["type"] == "LivechatSession"):
                missing_messages += max(0, 4 - len(close["messages"]))  # type: ignore[arg-type]
        return Outcome(name, len(rooms), len(unique), missing_messages, missing_webhooks,
                       len(got) - len(unique), kills)  # fmt: skip


@dataclass(frozen=True)
class _Broker:
    bootstrap: str


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30, help="scaling runs (default 30)")
    parser.add_argument("--kills", type=int, default=20, help="random SIGKILLs (default 20)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    broker = None
    if not bootstrap:
        broker = LocalKafka.configured(kafka_port=STRESS_PORT)
        print(broker.up(timeout_s=120, fresh=True), flush=True)
        bootstrap = broker.bootstrap
    hog = multiprocessing.Process(target=busy_loop, args=(time.time() + 24 * 3600,), daemon=True)
    hog.start()  # one of the two cores, for the whole run
    outcomes: list[Outcome] = []
    try:
        with tempfile.TemporaryDirectory(prefix="omnihooks-stress-") as workdir:
            stress = Stress(bootstrap, Path(workdir))
            for run in range(1, args.runs + 1):
                outcomes.append(stress.scaling(run))
                print(outcomes[-1].line(), flush=True)
            if args.kills:
                outcomes.append(stress.kills(args.kills, args.seed))
                print(outcomes[-1].line(), flush=True)
    finally:
        hog.terminate()
        if broker is not None:
            broker.down()
    total = Outcome("total", *(sum(getattr(o, f) for o in outcomes) for f in
                    ("rooms", "webhooks", "missing_messages", "missing_webhooks", "duplicates", "kills")))  # fmt: skip
    print(total.line())
    return 0 if total.missing_messages == total.missing_webhooks == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

"""The workers' own pages, read by the console: /metrics into the history, /endpoints into
each worker's breakers. A worker that answers nonsense or nothing is shown unreachable and
its breakers are dropped rather than shown stale."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from streams.core.endpoints import endpoint_label
from streams.ops.console.pages import BreakerView, WorkerView
from streams.ops.console.samples import History, parse_metrics

DNS_SCHEME = "dns+http://"


def breakers_of(worker: str, answer: Any) -> list[BreakerView]:
    """The worker's `GET /endpoints` answer as rows; entries that are not what a worker
    writes are left out."""
    found = []
    statuses = answer.get("endpoints", []) if isinstance(answer, dict) else []
    for s in statuses if isinstance(statuses, list) else []:
        try:
            reopen = s.get("reopen_in_s")
            found.append(
                BreakerView(
                    worker,
                    str(s["endpoint"]),
                    str(s["state"]),
                    int(s["waiting"]),
                    int(s["failures"]),
                    None if reopen is None else float(reopen),
                )
            )
        except (AttributeError, KeyError, TypeError, ValueError):
            continue
    return found


@dataclass
class WorkerPages:
    workers: Sequence[str]
    history: History
    views: dict[str, WorkerView] = field(default_factory=dict)
    breakers: dict[str, list[BreakerView]] = field(default_factory=dict)
    current: list[str] = field(default_factory=list)  # the workers' addresses, resolved
    unresolved: set[str] = field(default_factory=set)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _client: aiohttp.ClientSession | None = None

    async def read(self) -> None:
        """Every worker, now. One reading at a time, so the history's readings of a worker
        stay in the order they were taken (an older one stored last would look like a
        restart)."""
        async with self._lock:
            found = await asyncio.gather(*(self._expand(worker) for worker in self.workers))
            current = [address for addresses in found for address in addresses]
            for gone in set(self.views) - set(current) - set(self.workers):
                del self.views[gone]  # a pod that left: its counts stay in the history
                self.breakers.pop(gone, None)
            self.current = current
            await asyncio.gather(*(self._read(worker) for worker in current))

    async def _expand(self, worker: str) -> list[str]:
        """`dns+http://name:port`: one address per record the name resolves to now (a
        Kubernetes headless Service names every worker pod); any other URL as it is."""
        if not worker.startswith(DNS_SCHEME):
            return [worker]
        parts = urlsplit(worker.removeprefix("dns+"))
        port = parts.port or 80
        try:
            answers = await asyncio.get_running_loop().getaddrinfo(
                parts.hostname, port, type=socket.SOCK_STREAM
            )
        except OSError as exc:
            self.unresolved.add(worker)
            self.views[worker] = WorkerView(worker, False, f"no address ({exc.strerror or exc})")
            return []
        self.unresolved.discard(worker)
        self.views.pop(worker, None)
        addresses = sorted({str(answer[4][0]) for answer in answers})
        return [f"http://[{a}]:{port}" if ":" in a else f"http://{a}:{port}" for a in addresses]

    async def _read(self, worker: str) -> None:
        if self._client is None:
            self._client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        base = worker.rstrip("/")
        at = time.time()  # when the counters were read, not when the answer was parsed
        try:
            async with self._client.get(f"{base}/metrics") as answer:
                answer.raise_for_status()
                scrape = parse_metrics(await answer.text(), at)
            async with self._client.get(f"{base}/endpoints") as answer:
                breakers = breakers_of(worker, await answer.json()) if answer.ok else []
        except Exception as exc:  # any failure: shown, and the next read retries
            self.views[worker] = WorkerView(
                worker, False, f"unreachable ({type(exc).__name__}) at {time.strftime('%H:%M:%S')}"
            )
            self.breakers.pop(worker, None)
            return
        self.history.add(worker, scrape)
        self.breakers[worker] = breakers
        self.views[worker] = WorkerView(worker, True, f"read at {time.strftime('%H:%M:%S')}")

    def view(self, worker: str) -> WorkerView:
        return self.views.get(worker, WorkerView(endpoint_label(worker), False, "not read yet"))

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()

"""The workers' /metrics over time: counts and POST times per endpoint over a recent window.

Each scrape of each worker is kept for `keep_s`. A count over a window is the sum of the
increases between consecutive scrapes of each worker, so a worker's restart (its counters
back to zero) counts from zero rather than as a negative, as Prometheus's `increase()` does.
Percentiles come from the histogram buckets' increases, interpolated within a bucket as
Prometheus's `histogram_quantile()` does.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

OUTCOMES = "omnihooks_endpoint_outcomes"
POST_SECONDS = "omnihooks_endpoint_post_seconds"

# ("outcome", endpoint, outcome) or ("bucket", endpoint, upper bound as text)
Key = tuple[str, str, str]


@dataclass(frozen=True)
class Scrape:
    at: float
    values: Mapping[Key, float]


def parse_metrics(text: str, at: float) -> Scrape:
    """The per-endpoint series of one worker's /metrics text."""
    from prometheus_client.parser import text_string_to_metric_families

    values: dict[Key, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name not in (OUTCOMES, POST_SECONDS):
            continue
        for sample in family.samples:
            labels = sample.labels
            if sample.name == f"{OUTCOMES}_total":
                values[("outcome", labels["endpoint"], labels["outcome"])] = sample.value
            elif sample.name == f"{POST_SECONDS}_bucket":
                values[("bucket", labels["endpoint"], labels["le"])] = sample.value
    return Scrape(at, values)


def _increase(before: float, after: float) -> float:
    return after - before if after >= before else after  # a restart: counted from zero


@dataclass(frozen=True)
class EndpointWindow:
    """One endpoint over the window: outcome counts, POST time percentiles, a chart."""

    delivered: float = 0.0
    retried: float = 0.0
    dead_lettered: float = 0.0
    p50_s: float | None = None
    p99_s: float | None = None
    delivered_bins: tuple[float, ...] = ()
    failed_bins: tuple[float, ...] = ()

    @property
    def failed(self) -> float:
        return self.retried + self.dead_lettered


def quantile(q: float, buckets: Mapping[str, float]) -> float | None:
    """`histogram_quantile(q, ...)` over cumulative bucket counts keyed by upper bound."""
    bounds = sorted(buckets.items(), key=lambda item: float(item[0]))
    if not bounds or bounds[-1][1] <= 0:
        return None
    rank = q * bounds[-1][1]
    lower, below = 0.0, 0.0
    for text, count in bounds:
        upper = float(text)
        if count >= rank:
            if math.isinf(upper):
                return lower  # beyond the last finite bound: all that can be said
            if count == below:
                return upper
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    return lower


@dataclass
class History:
    """Every worker's scrapes of the last `keep_s` seconds."""

    keep_s: float = 900.0
    _scrapes: dict[str, deque[Scrape]] = field(default_factory=dict)

    def add(self, worker: str, scrape: Scrape) -> None:
        kept = self._scrapes.setdefault(worker, deque())
        if kept and scrape.at <= kept[-1].at:
            return  # taken before the last one kept: its counters are older
        kept.append(scrape)
        while kept and kept[0].at < scrape.at - self.keep_s:
            kept.popleft()

    def started_at(self) -> float | None:
        firsts = [kept[0].at for kept in self._scrapes.values() if kept]
        return min(firsts) if firsts else None

    def _pairs(self, since: float) -> Iterable[tuple[Scrape, Scrape, float]]:
        """Consecutive readings of each worker that end in the window, with the share of
        their interval inside it (what happened between them is taken as spread evenly)."""
        for kept in self._scrapes.values():
            for before, after in itertools.pairwise(kept):
                if after.at > since:
                    inside = min(1.0, (after.at - since) / (after.at - before.at))
                    yield before, after, inside

    def endpoints(self) -> set[str]:
        return {key[1] for kept in self._scrapes.values() for s in kept for key in s.values}

    def window(self, now: float, window_s: float, bins: int = 30) -> dict[str, EndpointWindow]:
        """Per endpoint: what happened in the last `window_s` seconds."""
        since = now - window_s
        step = window_s / bins
        totals: dict[Key, float] = {}
        delivered_bins: dict[str, list[float]] = {}
        failed_bins: dict[str, list[float]] = {}
        for before, after, inside in self._pairs(since):
            index = min(bins - 1, max(0, int((after.at - since) // step)))
            for key, value in after.values.items():
                grown = _increase(before.values.get(key, 0.0), value) * inside
                if not grown:
                    continue
                totals[key] = totals.get(key, 0.0) + grown
                kind, endpoint, name = key
                if kind != "outcome":
                    continue
                chart = delivered_bins if name == "delivered" else failed_bins
                chart.setdefault(endpoint, [0.0] * bins)[index] += grown
        found: dict[str, EndpointWindow] = {}
        for endpoint in self.endpoints():
            buckets = {k[2]: v for k, v in totals.items() if k[0] == "bucket" and k[1] == endpoint}
            found[endpoint] = EndpointWindow(
                delivered=totals.get(("outcome", endpoint, "delivered"), 0.0),
                retried=totals.get(("outcome", endpoint, "retry"), 0.0),
                dead_lettered=totals.get(("outcome", endpoint, "dead_letter"), 0.0),
                p50_s=quantile(0.5, buckets),
                p99_s=quantile(0.99, buckets),
                delivered_bins=tuple(delivered_bins.get(endpoint, [0.0] * bins)),
                failed_bins=tuple(failed_bins.get(endpoint, [0.0] * bins)),
            )
        return found

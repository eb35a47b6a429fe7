"""Consumer lag per partition, for `/metrics` (`omnihooks_consumer_lag`) and the chart's
alert on it: for each input partition this worker owns, the records on the broker after the
offset it committed. Reads Faust's consumer (its assignment, its committed offsets, which
the engine's commits keep) and asks the broker for the partitions' ends."""

from __future__ import annotations

from typing import Any

from streams.metrics import CONSUMER_LAG


async def partition_lags(app: Any) -> dict[tuple[str, int], int]:
    """Records behind per (topic, partition) this worker owns, changelogs left out (a
    standby's or a recovery's reading is not lag). A partition with no commit yet is
    counted from the offset it read up to, and left out before its first read."""
    consumer = app.consumer
    changelogs = set(app.tables.changelog_topics)
    owned = [tp for tp in consumer.assignment() if tp.topic not in changelogs]
    if not owned:
        return {}
    ends = await consumer.highwaters(*owned)
    lags: dict[tuple[str, int], int] = {}
    for tp in owned:
        done = consumer._committed_offset.get(tp)
        if done is None:
            read = consumer._read_offset.get(tp)
            done = None if read is None else read + 1
        end = ends.get(tp)
        if done is not None and end is not None:
            lags[(tp.topic, tp.partition)] = max(0, end - done)
    return lags


async def export_lag(app: Any) -> None:
    """Set the gauge to this worker's partitions now: a partition it lost loses its series,
    so a sum over workers counts each partition once."""
    if app.rebalancing:
        return  # assignment and offsets are moving: the next tick reads them settled
    lags = await partition_lags(app)
    CONSUMER_LAG.clear()
    for (topic, partition), lag in lags.items():
        CONSUMER_LAG.labels(topic, str(partition)).set(lag)

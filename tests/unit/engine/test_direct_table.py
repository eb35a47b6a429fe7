"""`DirectTable` over Faust's RocksDB store: a pass over its rooms reads each database once.

The due-event schedule re-reads every room after a recovery (`TableStore.raw_rooms`), with
the event loop blocked. The mapping mixin's `items()` reads each key again through the
store's `get`, which on RocksDB looks the key up in every partition's database unless
Faust's key-to-partition LRU knows it, and churns that LRU: a million rooms took 16.4 s,
5.8 s with the store's own pass (benchmark worker, 2026-11-26).
"""

from __future__ import annotations

from pathlib import Path

import faust
from faust.types import TP

from streams.engine import DirectTable, bytes_table


def test_items_is_one_pass_over_the_store_that_leaves_the_key_index_alone(
    tmp_path: Path,
) -> None:
    app = faust.App("direct-table-test", store="rocksdb://", datadir=str(tmp_path))
    table = bytes_table(app, "rooms", 2, "rooms")
    store = table.data
    rooms = {f"room-{n}".encode(): f"state-{n}".encode() for n in range(50)}
    for n, (key, value) in enumerate(rooms.items()):
        store._db_for_partition(n % 2).put(key, value)
    changelog = table.changelog_topic_name
    app.assignor.assigned_actives = lambda: {TP(changelog, 0), TP(changelog, 1)}  # type: ignore[method-assign]

    assert dict(DirectTable(app, table).items()) == rooms
    assert len(store._key_index) == 0

"""Faust tables of raw bytes, and dropping a table's keys from memory only.

Faust derives a changelog's serializers from the table's types ("json" for bytes) and ignores
a schema's; they are set before the changelog topic and store are made, so what omnihooks
wrote (orjson bytes) is read back byte for byte on recovery.

On RocksDB (`OMNIHOOKS_STORE=rocksdb`) Faust's defaults are sized for one big table per
process: a 2 GB block cache and three 64 MB write buffers for each partition's database. A
worker holds a database per table and partition (12 with 3 tables on 4 partitions), so its
memory would grow with the rooms up to gigabytes before anything reached disk. Small write
buffers and a small cache keep it flat; the hot rooms are few and bytes-keyed gets are cheap.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

ROCKSDB_OPTIONS = {
    "write_buffer_size": 4 * 1024 * 1024,
    "max_write_buffer_number": 2,
    "target_file_size_base": 16 * 1024 * 1024,
    "block_cache_size": 8 * 1024 * 1024,
    "block_cache_compressed_size": 0,
}


def bytes_table(
    app: Any,
    name: str,
    partitions: int,
    help_: str,
    topic_configs: Mapping[str, str] | None = None,
) -> Any:
    table = app.Table(
        name,
        key_type=bytes,
        value_type=bytes,
        partitions=partitions,
        help=help_,
        extra_topic_configs=dict(topic_configs or {}),
        options=dict(ROCKSDB_OPTIONS) if str(app.conf.store).startswith("rocksdb") else None,
    )
    table.key_serializer = "raw"
    table.value_serializer = "raw"
    return table


def forget_locally(table: Any, keys: Iterable[bytes]) -> int:
    """Drop keys from the worker's copy, writing nothing to the changelog (which forgets them
    by its own retention). Returns how many were dropped."""
    store = table.data
    dropped = 0
    for key in keys:
        if key in store:
            del store[key]
            dropped += 1
    return dropped

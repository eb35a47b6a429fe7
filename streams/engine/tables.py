"""Faust tables of raw bytes, and dropping a table's keys from memory only.

Faust derives a changelog's serializers from the table's types ("json" for bytes) and ignores
a schema's; they are set before the changelog topic and store are made, so what omnihooks
wrote (orjson bytes) is read back byte for byte on recovery.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


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

"""The worker's own `TableStore` over dicts: the session core without Kafka, with the very
keys and values the Faust tables hold (no re-implementation to drift from it)."""

from __future__ import annotations

from streams.core.table_store import TableStore


class MemoryStore(TableStore):
    def __init__(self) -> None:
        self.rooms_: dict[bytes, bytes] = {}
        self.messages: dict[bytes, bytes] = {}
        self.order: dict[bytes, bytes] = {}
        self.visitors_: dict[bytes, bytes] = {}
        super().__init__(self.rooms_, self.messages, self.order, self.visitors_)

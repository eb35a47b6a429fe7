"""Giving back the memory a table recovery used and freed.

Recovering a changelog decodes every record into Faust's message and event objects, and
aiokafka holds fetch buffers of megabytes: all garbage once the tables are filled, but the C
allocator keeps the freed pages, so a worker that recovered many rooms kept kilobytes a room
more than the rooms themselves hold. `release_freed_memory` collects, then asks glibc to
return free pages to the system (`malloc_trim`); elsewhere it only collects.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc


def _trim() -> object:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc
        return None


_MALLOC_TRIM = _trim()


def release_freed_memory() -> None:
    gc.collect()
    if callable(_MALLOC_TRIM):
        _MALLOC_TRIM(0)

"""Which offset may be committed for a partition: only through a run of finished records.

Faust's own rule (`Consumer._new_offset`) takes the first run of consecutive acknowledged
offsets, and refuses it only when it starts more than one offset past the committed one, or
not at all when nothing was committed yet. A record dropped in between (Faust clears its
channel queues when a rebalance's flow control resumes, after the consumer already handed
them on) is then committed over when it is the only one missing: the lost message of the
scaling and kill tests. Here the run must start exactly at the committed offset (or, with no
commit yet, at the first offset handed on in this generation). Offsets that never reach a
consumer (transaction markers, compacted records) are known gaps and count as finished.

Pure: offsets in, offset out.
"""

from __future__ import annotations

from collections.abc import Iterable


def committable(
    base: int | None, acked: Iterable[int], gaps: Iterable[tuple[int, int]]
) -> int | None:
    """The offset to commit: one past the run of finished-or-gap offsets starting at `base`,
    or None when `base` itself is not finished yet (or unknown). `gaps` are half-open
    `(begin, end)` spans, walked over whole (a compacted partition's can be long)."""
    if base is None:
        return None
    done = set(acked)
    spans = list(gaps)
    offset = base
    while True:
        if offset in done:
            offset += 1
            continue
        past_gap = next((end for begin, end in spans if begin <= offset < end), None)
        if past_gap is None:
            break
        offset = past_gap
    return offset if offset > base else None

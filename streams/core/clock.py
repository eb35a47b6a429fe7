"""Time as the contract writes it: ISO 8601 UTC with milliseconds (`2023-02-02T10:16:07.230Z`)."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

_last_second: list[tuple[int, str]] = [(0, "1970-01-01T00:00:00")]


def iso(epoch_s: float) -> str:
    # Every POST stamps its attempt: gmtime + strftime is cheaper than building a datetime,
    # but was still a visible share of a busy delivery worker's time (docs/history.md), so
    # the formatted second is kept until the clock leaves it. Rounded to the microsecond
    # first, as datetime.fromtimestamp does.
    fraction, whole = math.modf(epoch_s)
    seconds, micros = int(whole), round(fraction * 1e6)
    if micros >= 1_000_000:
        seconds, micros = seconds + 1, micros - 1_000_000
    elif micros < 0:
        seconds, micros = seconds - 1, micros + 1_000_000
    cached, text = _last_second[0]
    if cached != seconds:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _last_second[0] = (seconds, text)
    return f"{text}.{micros // 1000:03d}Z"


def now_iso() -> str:
    return iso(time.time())


def parse_iso(text: str) -> float:
    """Epoch seconds of an ISO 8601 timestamp (a trailing Z means UTC)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()

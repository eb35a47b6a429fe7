"""Time as the contract writes it: ISO 8601 UTC with milliseconds (`2023-02-02T10:16:07.230Z`)."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def iso(epoch_s: float) -> str:
    moment = datetime.fromtimestamp(epoch_s, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def now_iso() -> str:
    return iso(time.time())


def parse_iso(text: str) -> float:
    """Epoch seconds of an ISO 8601 timestamp (a trailing Z means UTC)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()

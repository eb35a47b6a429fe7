"""Failed attempts in the log: the first per endpoint in each window in full, the rest counted.

When a CRM goes down, every job to it fails ten times over; a line per attempt buries the
log and costs the worker time. Each endpoint (scheme, host and port of the webhook URL) gets
one full line when it starts failing in a window, and one summary line when the window ends:
how many more attempts failed and the last reason. Every attempt is still counted in the
metrics and kept on the job's record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

WINDOW_S = 10.0


@dataclass
class _Window:
    opened_at: float
    more: int = 0
    last_reason: str = ""


def endpoint_of(url: str) -> str:
    """Scheme, host and port: never the path, query or user info, which may hold secrets."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:  # not a URL at all: such an attempt failed as "invalid URL"
        return "(invalid URL)"
    try:
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:  # a malformed port: the attempt failed on it; keep it out of the key
        port = ""
    if ":" in host:
        host = f"[{host}]"  # IPv6
    return f"{parts.scheme}://{host}{port}"


class FailureLog:
    def __init__(
        self, log: logging.Logger, clock: Callable[[], float], window_s: float = WINDOW_S
    ) -> None:
        self._log = log
        self._clock = clock
        self._window_s = window_s
        self._windows: dict[str, _Window] = {}

    def failed(self, url: str, line: str, *args: object, reason: str) -> None:
        """An attempt to `url` failed: log `line % args` if it is the endpoint's first in the
        window, else count it."""
        endpoint = endpoint_of(url)
        now = self._clock()
        window = self._windows.get(endpoint)
        if window is not None and now - window.opened_at >= self._window_s:
            self._summarize(endpoint, window)
            window = None
        if window is None:
            self._windows[endpoint] = _Window(opened_at=now)
            self._log.info("%s: " + line, endpoint, *args)
            return
        window.more += 1
        window.last_reason = reason

    def flush(self, everything: bool = False) -> None:
        """Summarize the windows that have ended (called by a timer), or all of them (at
        shutdown, so no count is lost)."""
        now = self._clock()
        for endpoint, window in list(self._windows.items()):
            if everything or now - window.opened_at >= self._window_s:
                self._summarize(endpoint, window)
                del self._windows[endpoint]

    def _summarize(self, endpoint: str, window: _Window) -> None:
        if window.more:
            self._log.info(
                "%s: %d more failed attempts in %.0f s; the last: %s",
                endpoint, window.more, min(self._window_s, self._clock() - window.opened_at),
                window.last_reason,
            )  # fmt: skip

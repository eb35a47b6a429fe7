"""Run a Faust worker for one role, in the foreground, until SIGTERM/SIGINT."""

from __future__ import annotations

import logging

import faust

from streams.app import Role, create_app
from streams.settings import Settings

log = logging.getLogger(__name__)


def run_worker(settings: Settings, role: Role, loglevel: str = "INFO") -> int:
    """Start the worker; returns its exit code when it stops."""
    omnihooks = create_app(settings, role)
    if not settings.delivery_enabled:
        log.warning("OMNIHOOKS_WEBHOOK_URL is empty: no webhook will be sent (Rocket.Chat's rule)")
    worker = faust.Worker(omnihooks.app, loglevel=loglevel.lower(), quiet=True)
    worker.execute_from_commandline()  # returns only via SystemExit on shutdown
    return 0

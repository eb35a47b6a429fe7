"""Run a Faust worker for one role, in the foreground, until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging

from streams.app import Omnihooks, Role, create_app
from streams.core.leads import compile_lead_patterns
from streams.engine.worker import Worker
from streams.settings import Settings

log = logging.getLogger(__name__)


def build_worker_app(settings: Settings, role: Role) -> Omnihooks:
    """The app with the agents of `role` registered; bad lead regexes fail here, at start."""
    leads = compile_lead_patterns(settings.lead_email_regex, settings.lead_phone_regex)
    omnihooks = create_app(settings, role)
    if role in ("all", "sessions"):
        from streams.agents.relay import register_relay_agent
        from streams.agents.sessions import register_session_agents

        register_session_agents(omnihooks, leads)
        register_relay_agent(omnihooks)
    if role in ("all", "delivery"):
        from streams.agents.delivery import register_delivery_agents

        register_delivery_agents(omnihooks)
    return omnihooks


def _use_uvloop() -> None:
    """uvloop's event loop, where installed: the worker is all asyncio (aiokafka, aiohttp)."""
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def run_worker(settings: Settings, role: Role, loglevel: str = "INFO") -> int:
    """Start the worker; returns its exit code when it stops."""
    _use_uvloop()
    omnihooks = build_worker_app(settings, role)
    if not settings.delivery_enabled:
        log.warning(
            "OMNIHOOKS_WEBHOOK_URL is empty: no default endpoint; webhooks go only to the "
            "endpoints on the endpoints topic"
        )
    lease, kept = settings.breaker_hold_lease_s, settings.settled_retention_s
    if settings.breaker and 0 < kept <= lease:
        # a crash then repeats held-and-delivered jobs the settled table has forgotten
        log.warning("OMNIHOOKS_BREAKER_HOLD_LEASE_S (%.0f s) is not below "
                    "OMNIHOOKS_SETTLED_RETENTION_S (%.0f s): a crash may POST again jobs "
                    "delivered more than %.0f s before it", lease, kept, kept)  # fmt: skip
    worker = Worker(omnihooks.app, loglevel=loglevel.lower(), quiet=True)
    worker.execute_from_commandline()  # returns only via SystemExit on shutdown
    return 0

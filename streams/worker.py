"""Run a Faust worker for one role, in the foreground, until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging

from streams.agents.tables import Role, changelog_topic, role_app_id, tables_of
from streams.app import Omnihooks, create_app
from streams.core.leads import compile_lead_patterns
from streams.engine import kafka
from streams.engine.kafka import KafkaConfig
from streams.engine.worker import Worker
from streams.settings import Settings
from topics.roles import load_roles

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
    from streams.engine.lag import export_lag

    app = omnihooks.app

    async def lag() -> None:
        await export_lag(app)

    app.timer(interval=LAG_INTERVAL_S, name="consumer-lag")(lag)
    return omnihooks


LAG_INTERVAL_S = 10.0  # a Prometheus scrape's usual period: fresher would cost for nothing


def _use_uvloop() -> None:
    """uvloop's event loop, where installed: the worker is all asyncio (aiokafka, aiohttp)."""
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def check_cluster(settings: Settings, role: Role) -> None:
    """Before Faust starts: the cluster takes this worker's login and certificate, and every
    topic it uses exists (an admin creates them: the worker has no right to). Raises
    KafkaAccessError or MissingTopics, each saying what to do."""
    config = KafkaConfig.of(settings)
    if not kafka.check_connection(config):
        return  # no broker yet: Faust's clients wait for one, as they do after a restart
    loop = asyncio.new_event_loop()  # not the worker's: Faust makes its own
    try:
        loop.run_until_complete(kafka.check_aiokafka_connection(config))
    finally:
        loop.close()
    kafka.check_group_access(config, role_app_id(settings, role))
    missing = kafka.missing_topics(config, worker_topics(settings, role))
    if missing:
        raise MissingTopics(
            f"{len(missing)} topics this worker uses do not exist ({', '.join(missing)}): "
            f"an admin creates them with `omnihooks topics apply --role {role}`"
        )


class MissingTopics(RuntimeError):
    """Topics a worker needs are not on the cluster; a worker never creates them."""


def worker_topics(settings: Settings, role: Role) -> list[str]:
    """The topics a worker of `role` reads or writes, its tables' changelogs included."""
    rights = load_roles()[ROLE_RIGHTS[role]]
    names = dict.fromkeys(f"{settings.topic_prefix}{t}" for t in (*rights.read, *rights.write))
    names.update(
        dict.fromkeys(changelog_topic(settings, role, t) for t in tables_of(role, settings))
    )
    return list(names)


# the rights of each worker role, in topics/roles.toml
ROLE_RIGHTS: dict[Role, str] = {"all": "worker", "sessions": "worker-sessions",
                                "delivery": "worker-delivery"}  # fmt: skip


def run_worker(settings: Settings, role: Role, loglevel: str = "INFO") -> int:
    """Start the worker; returns its exit code when it stops."""
    _use_uvloop()
    check_cluster(settings, role)
    omnihooks = build_worker_app(settings, role)
    if settings.otlp_endpoint:
        from streams import tracing

        tracing.setup_otlp(settings.otlp_endpoint, f"omnihooks-{role}")
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

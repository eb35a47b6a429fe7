"""Where and how each job goes: its endpoint's retry policy, credentials and POST limit,
worked out from the endpoint's record over the worker's settings."""

from __future__ import annotations

import asyncio
import base64
import math
import ssl
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from streams.core.breaker import BreakerPolicy
from streams.core.clock import parse_iso
from streams.core.compat import profile_named, retry_delay_s
from streams.core.endpoints import EndpointDirectory, signing_secrets
from streams.core.retry import RetryPolicy
from streams.delivery.oauth2 import TokenSource
from streams.delivery.webhook_client import Credentials
from streams.settings import Settings
from topics.records import ClientTls, EndpointRecord, WebhookJob


def policy_from(settings: Settings, endpoint: EndpointRecord | None = None) -> RetryPolicy:
    """The worker's retry policy, or an endpoint's: its own attempts, delay and timeout,
    else the worker's settings, else its compatibility profile's."""
    if endpoint is None:
        retries, delay_s, rule = (
            settings.retries,
            settings.retry_delay,
            settings.retry_rule_in_force,
        )
    else:
        profile = profile_named(endpoint.compat or settings.compat)
        timeout_s = (endpoint.timeout_ms or settings.http_timeout_ms) / 1000
        retries = _first(endpoint.retry_attempts, settings.retry_attempts, profile.retries)
        delay_s = _first(endpoint.retry_delay_s, settings.retry_delay_s,
                         retry_delay_s(profile, timeout_s))  # fmt: skip
        # the worker's rule when set (its alias resolved there), else the endpoint's profile's
        rule = settings.retry_rule_in_force if settings.retry_rule else profile.retry_rule
    return RetryPolicy(
        retries=retries,
        delay_s=delay_s,
        rule=rule,
        accept_any_2xx=settings.accept_any_2xx,
        jitter=settings.retry_jitter,
        retry_after_max_s=settings.retry_after_max_s,
    )


def _first(*values: Any) -> Any:
    return next(value for value in values if value is not None)


@dataclass(frozen=True)
class Target:
    """How one endpoint's jobs go: its retry policy, its token, keys and timeout (None: the
    worker's), and its own limit on POSTs in flight (None: only the worker's)."""

    policy: RetryPolicy
    credentials: Credentials | None = None
    limit: asyncio.Semaphore | None = None
    limit_size: int | None = None
    renew_at: float = math.inf  # when a rotated-out secret stops signing: work it out again
    crm_answers: bool = True  # its 200 answers become the room's crmData
    template: str = ""  # the jq program that makes its request (streams/core/expressions.py)
    # Why its jobs go to the dead letters unsent: its endpoint was removed or disabled
    # after they were made. Empty: they go.
    gone: str = ""


class Targets:
    """Each endpoint's `Target`, worked out again when its record changes."""

    def __init__(self, settings: Settings, directory: EndpointDirectory) -> None:
        self.settings, self.directory = settings, directory
        self.default = Target(policy_from(settings))
        self.removed = Target(policy_from(settings), Credentials(), gone="endpoint removed")
        self._known: dict[tuple[str | None, str], tuple[EndpointRecord, Target]] = {}

    def of(self, job: WebhookJob) -> Target:
        if job.endpoint_id is None:
            return self.default
        endpoint = self.directory.find(job.workspace, job.endpoint_id)
        key = (job.workspace, job.endpoint_id)
        known = self._known.get(key)
        if endpoint is None:
            # Removed: nothing goes to it after the change; its jobs stay replayable.
            self._known.pop(key, None)
            return self.removed
        if not endpoint.created_at:
            return self.default  # the environment's own endpoint: the worker's settings
        if not endpoint.enabled:
            return replace(self.removed, gone="endpoint disabled")
        now = time.time()
        if known is not None and known[0] is endpoint and now < known[1].renew_at:
            return known[1]
        target = self._target(endpoint, known[1] if known is not None else None, now)
        self._known[key] = (endpoint, target)
        return target

    def _target(self, endpoint: EndpointRecord, before: Target | None, now: float) -> Target:
        timeout_s = endpoint.timeout_ms / 1000 if endpoint.timeout_ms is not None else None
        credentials = Credentials.of(endpoint.token, signing_secrets(endpoint, now), timeout_s)
        headers = dict(endpoint.headers)
        if endpoint.basic_auth:
            headers["Authorization"] = (
                "Basic " + base64.b64encode(endpoint.basic_auth.encode()).decode()
            )
        tokens = None
        if endpoint.oauth2 is not None:
            kept = before.credentials.tokens if before and before.credentials else None
            # the same token while the client stands: another change keeps it
            if kept is not None and kept.client == endpoint.oauth2:
                tokens = kept
            else:
                token_timeout_s = timeout_s or self.settings.http_timeout_ms / 1000
                tokens = TokenSource(endpoint.oauth2, token_timeout_s, self.settings.tls_verify)
        credentials = replace(
            credentials,
            headers=tuple(headers.items()),
            tokens=tokens,
            tls=client_tls(endpoint.tls, self.settings.tls_verify) if endpoint.tls else None,
        )
        ends = [parse_iso(s.expires_at) for s in endpoint.secrets if s.expires_at]
        size = endpoint.concurrency
        limit = None
        if size is not None:
            # the same semaphore while the size stands: POSTs in flight keep counting
            same = before is not None and before.limit_size == size
            limit = before.limit if same and before is not None else asyncio.Semaphore(size)
        return Target(policy_from(self.settings, endpoint), credentials, limit, size,
                      min((end for end in ends if end > now), default=math.inf),
                      endpoint.crm_answers, endpoint.template)  # fmt: skip


def client_tls(tls: ClientTls, verify: bool) -> ssl.SSLContext:
    """A TLS context for one receiver: its CA bundle (else the system's) and our client
    certificate. The standard library loads a key pair only from files: they are written
    to a private directory for the load and removed at once."""
    context = ssl.create_default_context(cadata=tls.ca or None)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if tls.certificate:
        with tempfile.TemporaryDirectory(prefix="omnihooks-tls-") as folder:
            cert, key = Path(folder) / "cert.pem", Path(folder) / "key.pem"
            cert.write_text(tls.certificate)
            key.touch(mode=0o600)
            key.write_text(tls.key)
            context.load_cert_chain(cert, key)
    return context


def breaker_policy_from(settings: Settings) -> BreakerPolicy | None:
    if not settings.breaker:
        return None
    return BreakerPolicy(
        failure_ratio=settings.breaker_failure_ratio,
        min_jobs=settings.breaker_min_jobs,
        window_s=settings.breaker_window_s,
        cooldown_s=settings.breaker_cooldown_s,
        max_cooldown_s=settings.breaker_max_cooldown_s,
    )

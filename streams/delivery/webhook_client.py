"""The HTTP edge: one pooled aiohttp session per worker, one POST per attempt.

aiohttp, not httpx, on this hot path: many times faster with many requests in flight
(docs/history.md). Every aiohttp error is mapped here, once, to an `Attempt` with an error
class; nothing above this module sees an aiohttp exception.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
import time
from dataclasses import dataclass

import aiohttp
import yarl

from streams import tracing
from streams.core.clock import iso
from streams.core.expressions import Request
from streams.core.signing import sign, signing_key
from streams.delivery.oauth2 import TokenError, TokenSource
from streams.settings import Settings
from topics import codec
from topics.records import Attempt, WebhookJob

TOKEN_HEADER = "X-RocketChat-Livechat-Token"
# What a template's headers may not replace: the webhook's identity and signature.
OWN_HEADERS = frozenset(
    {"content-type", "webhook-id", "webhook-sequence", "webhook-timestamp", "webhook-signature",
     TOKEN_HEADER.lower(), "traceparent"}
)  # fmt: skip


@dataclass(frozen=True)
class Answer:
    """One attempt and, for a success, the answer's body (for crmData)."""

    attempt: Attempt
    body: bytes
    retry_after: str | None = None  # the answer's Retry-After header, as sent


@dataclass(frozen=True)
class Credentials:
    """What an endpoint's POSTs carry: its Livechat token, the keys that sign (two during a
    secret's rotation), and its own timeout (None: the worker's)."""

    token: str = ""
    keys: tuple[bytes, ...] = ()
    timeout_s: float | None = None
    # The receiver's own authentication: static headers (basic auth among them), an
    # OAuth2 token source, a TLS context with a client certificate or its own CA.
    headers: tuple[tuple[str, str], ...] = ()
    tokens: TokenSource | None = None
    tls: ssl.SSLContext | None = None

    @classmethod
    def of(cls, token: str, secrets: list[str], timeout_s: float | None = None) -> Credentials:
        return cls(token, tuple(signing_key(secret) for secret in secrets), timeout_s)


class WebhookClient:
    def __init__(self, settings: Settings) -> None:
        secret = settings.signing_secret.get_secret_value()
        self.default = Credentials.of(
            settings.secret_token.get_secret_value(), [secret] if secret else []
        )
        self._timeout = aiohttp.ClientTimeout(total=settings.http_timeout_ms / 1000)
        self._excerpt_bytes = settings.response_excerpt_bytes
        self._body_limit = max(settings.crm_data_max_bytes, settings.response_excerpt_bytes)
        self._limit = settings.delivery_concurrency
        self._verify_tls = settings.tls_verify
        self._block_private = settings.block_private_urls
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=self._limit, limit_per_host=self._limit, ssl=self._verify_tls
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            json_serialize=lambda v: codec.dumps(v).decode(),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def headers(
        self, job: WebhookJob, body: bytes, timestamp: int, credentials: Credentials | None = None
    ) -> dict[str, str]:
        credentials = credentials or self.default
        headers = {"Content-Type": "application/json", "webhook-id": job.delivery_id}
        if job.sequence is not None:
            headers["webhook-sequence"] = str(job.sequence)
        if credentials.token:
            headers[TOKEN_HEADER] = credentials.token
        if credentials.keys:
            # Standard Webhooks: space-separated signatures, any of which may verify.
            headers["webhook-timestamp"] = str(timestamp)
            headers["webhook-signature"] = " ".join(
                sign(key, job.delivery_id, timestamp, body) for key in credentials.keys
            )
        return headers

    def request_headers(
        self,
        job: WebhookJob,
        body: bytes,
        timestamp: int,
        credentials: Credentials | None,
        request: Request | None,
        bearer: str | None,
    ) -> dict[str, str]:
        """Every header of one request: a template's own (never over the webhook's
        identity and signature), ours, the receiver's static ones, its bearer token."""
        headers = self.headers(job, body, timestamp, credentials)
        if request is not None and request.headers:
            own = {k: v for k, v in request.headers.items() if k.lower() not in OWN_HEADERS}
            headers = {**own, **headers}
        if credentials is not None:
            headers.update(credentials.headers)
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        return headers

    async def _read_bounded(self, response: aiohttp.ClientResponse) -> bytes:
        """The whole answer, but never more than the limit + 1 bytes (enough to tell it was
        over): a CRM answering with megabytes must not cost a worker megabytes. Reading to
        the end also makes a trickling answer hit the timeout, as Rocket.Chat's would."""
        chunks: list[bytes] = []
        size = 0
        while size <= self._body_limit:
            chunk = await response.content.read(self._body_limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)

    async def post(
        self,
        job: WebhookJob,
        url: str | None = None,
        credentials: Credentials | None = None,
        request: Request | None = None,
    ) -> Answer:
        """Send the job once (its body, or what its endpoint's template made of it); never
        raises for what the network, the receiver or its token endpoint does. A 401 with
        an OAuth2 token fetches a new one and sends again at once: the same attempt."""
        body = request.body if request is not None else job_body(job)
        target = (url or job.url) + (request.path if request is not None else "")
        answer = await self._send(job, target, body, credentials, request)
        tokens = credentials.tokens if credentials is not None else None
        if answer.attempt.status == 401 and tokens is not None:
            answer = await self._send(job, target, body, credentials, request)
        return answer

    async def _send(
        self,
        job: WebhookJob,
        target: str,
        body: bytes,
        credentials: Credentials | None,
        request: Request | None,
    ) -> Answer:
        if self._session is None:
            await self.start()
        assert self._session is not None
        if self._block_private:
            blocked = await private_address(target)
            if blocked is not None:
                attempt = Attempt(iso(time.time()), None, f"blocked: {blocked}", 0.0)
                return Answer(attempt, b"")
        started_wall = time.time()
        started = time.perf_counter()
        bearer = None
        if credentials is not None and credentials.tokens is not None:
            try:
                bearer = await credentials.tokens.token()
            except TokenError as exc:
                attempt = Attempt(iso(started_wall), None, f"oauth2: {exc}",
                                  round((time.perf_counter() - started) * 1000, 3))  # fmt: skip
                return Answer(attempt, b"")
        headers = self.request_headers(job, body, int(started_wall), credentials, request, bearer)
        method = request.method if request is not None else "POST"
        tls: ssl.SSLContext | bool = self._verify_tls
        if credentials is not None and credentials.tls is not None:
            tls = credentials.tls
        with tracing.post_attempt(job, method, target) as (traceparent, done):
            if traceparent is not None:
                headers[tracing.HEADER] = traceparent
            answer = await self._request(method, target, body, headers, credentials, bearer,
                                         tls, started_wall, started)  # fmt: skip
            done(answer.attempt.status, answer.attempt.error)
        return answer

    async def _request(
        self,
        method: str,
        target: str,
        body: bytes,
        headers: dict[str, str],
        credentials: Credentials | None,
        bearer: str | None,
        tls: ssl.SSLContext | bool,
        started_wall: float,
        started: float,
    ) -> Answer:
        assert self._session is not None
        # aiohttp reads timeout=None as no timeout at all: the session's unless the endpoint
        # sets its own.
        timeout = self._timeout
        if credentials is not None and credentials.timeout_s is not None:
            timeout = aiohttp.ClientTimeout(total=credentials.timeout_s)
        status: int | None = None
        error: str | None = None
        answer = b""
        retry_after: str | None = None
        try:
            # Redirects are not followed: a POST turned into a GET would count as delivered
            # though the CRM never got the body. A 3xx is a failed attempt, on the record.
            async with self._session.request(
                method, target, data=body, headers=headers, allow_redirects=False,
                timeout=timeout, ssl=tls,
            ) as response:  # fmt: skip
                status = response.status
                if status == 401 and bearer is not None and credentials is not None:
                    assert credentials.tokens is not None
                    credentials.tokens.forget(bearer)
                retry_after = response.headers.get("Retry-After")
                answer = await self._read_bounded(response)
        except TimeoutError:
            error = "timeout"
        except aiohttp.ClientConnectorError as exc:
            error = f"connection error: {type(exc.os_error).__name__}"
        except aiohttp.ServerDisconnectedError:
            error = "server disconnected"
        except aiohttp.ClientPayloadError:
            error = "response body broken off"
        except aiohttp.InvalidURL:
            error = "invalid URL"
        except aiohttp.ClientError as exc:
            error = f"{type(exc).__name__}"
        except (OSError, asyncio.IncompleteReadError) as exc:
            error = f"{type(exc).__name__}"
        if status is not None and error is not None:
            # the status line came but the body broke off: still a failed attempt
            status, error = None, f"HTTP {status} then {error}"
        duration_ms = round((time.perf_counter() - started) * 1000, 3)
        excerpt = answer[: self._excerpt_bytes].decode("utf-8", "replace") if answer else None
        attempt = Attempt(iso(started_wall), status, error, duration_ms, excerpt)
        return Answer(attempt, answer, retry_after)


def job_body(job: WebhookJob) -> bytes:
    """The Rocket.Chat body as it goes without a template: relay's exactly as posted."""
    return job.raw_body.encode() if job.raw_body is not None else codec.dumps(job.body)


async def private_address(url: str) -> str | None:
    """Why `url` must not be called under OMNIHOOKS_BLOCK_PRIVATE_URLS, or None.

    The host is resolved here and every address checked. aiohttp resolves again when it
    connects, so a DNS answer that changes in between (rebinding) is not caught: this guards
    against misconfigured or user-supplied URLs, not a hostile DNS server.
    """
    parsed = yarl.URL(url)
    host = parsed.host
    if not host:
        return "no host in URL"
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, parsed.port or 443)
    except OSError as exc:
        return f"cannot resolve {host}: {exc.strerror or exc}"
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if (
            address.is_private
            or address.is_loopback
            or address.is_link_local
            or address.is_reserved
            or address.is_multicast
            or address.is_unspecified
        ):
            return f"{host} resolves to the non-public address {address}"
    return None

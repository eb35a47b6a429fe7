"""The HTTP edge: one pooled aiohttp session per worker, one POST per attempt.

aiohttp, not httpx, on this hot path: many times faster with many requests in flight
(docs/history.md). Every aiohttp error is mapped here, once, to an `Attempt` with an error
class; nothing above this module sees an aiohttp exception.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from dataclasses import dataclass

import aiohttp
import yarl

from streams.core.clock import iso
from streams.core.signing import sign, signing_key
from streams.settings import Settings
from topics import codec
from topics.records import Attempt, WebhookJob

TOKEN_HEADER = "X-RocketChat-Livechat-Token"


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
        self, job: WebhookJob, url: str | None = None, credentials: Credentials | None = None
    ) -> Answer:
        """POST the job's body once; never raises for what the network or receiver does."""
        if self._session is None:
            await self.start()
        assert self._session is not None
        body = job.raw_body.encode() if job.raw_body is not None else codec.dumps(job.body)
        target = url or job.url
        if self._block_private:
            blocked = await private_address(target)
            if blocked is not None:
                attempt = Attempt(iso(time.time()), None, f"blocked: {blocked}", 0.0)
                return Answer(attempt, b"")
        started_wall = time.time()
        started = time.perf_counter()
        headers = self.headers(job, body, int(started_wall), credentials)
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
            async with self._session.post(
                target, data=body, headers=headers, allow_redirects=False, timeout=timeout
            ) as response:
                status = response.status
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

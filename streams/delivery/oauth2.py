"""OAuth2 client credentials (RFC 6749 section 4.4) toward a receiver, with Authlib.

The token is fetched once and kept until shortly before it expires; a 401 from the
receiver drops it (the next request fetches a new one). Authlib's httpx client makes the
token request: one request per token lifetime, off the delivery hot path, where httpx's
speed does not matter and Authlib's handling of the grant, client authentication and
`expires_in` does.
"""

from __future__ import annotations

import asyncio
import logging
import warnings

import httpx
from authlib.deprecate import AuthlibDeprecationWarning

with warnings.catch_warnings():
    # Authlib's clients import its own deprecated `authlib.jose` internally (it turns its
    # warnings on for good when imported, hence the filter after that); nothing here uses
    # JOSE, and the warning would reach every worker's log.
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client
    from authlib.oauth2.rfc6749 import OAuth2Token

from topics.records import OAuth2Client

log = logging.getLogger(__name__)

# Refetched this long before it expires: a token good when sent stays good on arrival.
EXPIRY_LEEWAY_S = 30


class TokenError(Exception):
    """The token endpoint did not give a token: why (a failed attempt's reason)."""


class TokenSource:
    """One endpoint's access token, shared by its POSTs in flight."""

    def __init__(self, client: OAuth2Client, timeout_s: float, verify: bool = True) -> None:
        self.client, self.timeout_s, self.verify = client, timeout_s, verify
        self._token: OAuth2Token | None = None
        self._lock = asyncio.Lock()
        self.fetched = 0  # tokens fetched so far (the tests count them)

    async def token(self) -> str:
        """A token good for a while yet: the kept one, or a new one (one fetch at a time)."""
        async with self._lock:
            if self._token is None or self._token.is_expired(leeway=EXPIRY_LEEWAY_S):
                self._token = await self._fetch()
            return str(self._token["access_token"])

    def forget(self, token: str) -> None:
        """The receiver refused `token` (401): fetch another next time, unless another POST
        already did."""
        if self._token is not None and self._token.get("access_token") == token:
            self._token = None

    async def _fetch(self) -> OAuth2Token:
        extra = {"audience": self.client.audience} if self.client.audience else {}
        try:
            async with AsyncOAuth2Client(
                self.client.client_id,
                self.client.client_secret,
                scope=self.client.scope or None,
                timeout=self.timeout_s,
                verify=self.verify,
            ) as session:
                token = await session.fetch_token(
                    self.client.token_url, grant_type="client_credentials", **extra
                )
        except httpx.TimeoutException:
            raise TokenError("token endpoint timeout") from None
        except httpx.HTTPError as exc:
            raise TokenError(f"token endpoint: {type(exc).__name__}") from None
        except Exception as exc:  # Authlib's OAuthError and friends: the server said no
            raise TokenError(f"token endpoint refused: {exc}") from None
        if "access_token" not in token:
            raise TokenError("token endpoint answered without an access_token")
        self.fetched += 1
        log.info("OAuth2 token fetched from %s (expires in %s s)",
                 self.client.token_url, token.get("expires_in", "?"))  # fmt: skip
        return OAuth2Token(token)

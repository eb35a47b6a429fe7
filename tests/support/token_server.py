"""An OAuth2 token endpoint for the receiver-auth tests: RFC 6749 client credentials
(section 4.4) by oauthlib's `BackendApplicationServer`, not hand-rolled. The receiver's
`/token` path serves it and its `/bearer` path accepts only the tokens it issued."""

from __future__ import annotations

import base64
import threading
from dataclasses import dataclass, field
from typing import Any

from oauthlib.common import Request
from oauthlib.oauth2 import BackendApplicationServer, RequestValidator


@dataclass
class Client:
    client_id: str


class Validator(RequestValidator):  # type: ignore[misc]
    def __init__(self, clients: dict[str, str], issued: list[str]) -> None:
        self.clients, self.issued = clients, issued

    def client_authentication_required(self, request: Request, *args: Any, **kwargs: Any) -> bool:
        return True

    def authenticate_client(self, request: Request, *args: Any, **kwargs: Any) -> bool:
        client_id, secret = request.client_id, request.client_secret
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):  # client_secret_basic, Authlib's default
            client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        if client_id is None or self.clients.get(client_id) != secret:
            return False
        request.client = Client(client_id)
        request.client_id = client_id
        return True

    def validate_grant_type(self, client_id: str, grant_type: str, client: Any,
                            request: Request, *args: Any, **kwargs: Any) -> bool:  # fmt: skip
        return grant_type == "client_credentials"

    def validate_scopes(self, client_id: str, scopes: list[str], client: Any,
                        request: Request, *args: Any, **kwargs: Any) -> bool:  # fmt: skip
        return set(scopes) <= {"crm.write", "crm.read"}

    def get_default_scopes(self, client_id: str, request: Request, *args: Any, **kwargs: Any) -> list[str]:  # fmt: skip
        return ["crm.write"]

    def save_bearer_token(self, token: dict[str, Any], request: Request, *args: Any,
                          **kwargs: Any) -> None:  # fmt: skip
        self.issued.append(token["access_token"])


@dataclass
class TokenServer:
    clients: dict[str, str] = field(default_factory=lambda: {"omnihooks": "s3cret-client"})
    expires_in: int = 3600
    issued: list[str] = field(default_factory=list)
    requests: list[dict[str, str]] = field(default_factory=list)  # each token request's form
    refuse_next: int = 0  # the next n valid tokens get a 401 at /bearer (revoked early)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.server = BackendApplicationServer(
            Validator(self.clients, self.issued), token_expires_in=self.expires_in
        )

    def token_response(self, uri: str, body: str, headers: dict[str, str]) -> tuple[int, dict[str, str], str]:  # fmt: skip
        from urllib.parse import parse_qsl

        with self._lock:
            self.requests.append(dict(parse_qsl(body)))
            answer_headers, answer, status = self.server.create_token_response(
                uri, "POST", body, headers
            )
        return status, answer_headers, answer

    def accepts(self, authorization: str) -> bool:
        """Whether `/bearer` takes this Authorization header."""
        token = authorization.removeprefix("Bearer ")
        with self._lock:
            if token not in self.issued:
                return False
            if self.refuse_next > 0:
                self.refuse_next -= 1
                self.issued.remove(token)  # revoked: only a new token works now
                return False
            return True

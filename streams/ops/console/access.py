"""Who may change what: named bearer tokens, browser sessions and their CSRF tokens.

`OMNIHOOKS_CONSOLE_TOKEN` holds one token or several, comma-separated, each `name:token` (a
bare token is named "console"); the name is what the log says did a replay or a purge. A
script sends `Authorization: Bearer <token>`. A browser signs in once with a token and gets
a session cookie (HttpOnly, SameSite=Strict) and a CSRF token that every form carries: the
cookie alone, sent by a page of another site, changes nothing.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field

SESSION_COOKIE = "omnihooks_console"
SESSION_S = 12 * 3600


class TokenError(ValueError):
    """OMNIHOOKS_CONSOLE_TOKEN cannot be read."""


def parse_tokens(text: str) -> dict[str, str]:
    """`name:token,...` (or one bare token) as {name: token}."""
    tokens: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, token = part.partition(":")
        if not sep:
            name, token = "console", part
        name, token = name.strip(), token.strip()
        if not name or not token:
            raise TokenError("OMNIHOOKS_CONSOLE_TOKEN: give `name:token` entries, comma-separated")
        if len(token) < 16:
            raise TokenError(f"OMNIHOOKS_CONSOLE_TOKEN: the token of {name!r} is shorter than 16")
        if name in tokens:
            raise TokenError(f"OMNIHOOKS_CONSOLE_TOKEN: {name!r} is named twice")
        tokens[name] = token
    return tokens


@dataclass(frozen=True)
class Session:
    name: str
    csrf: str
    expires_at: float


@dataclass
class Access:
    tokens: dict[str, str]
    _sessions: dict[str, Session] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        """False: no token set, so nothing may change anything (the console is read-only)."""
        return bool(self.tokens)

    def name_of(self, token: str) -> str | None:
        """The token's name, compared in constant time against every token."""
        found = None
        for name, known in self.tokens.items():
            if hmac.compare_digest(token.encode(), known.encode()):
                found = name
        return found

    def bearer(self, authorization: str | None) -> str | None:
        if not authorization or not authorization.startswith("Bearer "):
            return None
        return self.name_of(authorization.removeprefix("Bearer ").strip())

    def sign_in(self, token: str, now: float | None = None) -> tuple[str, Session] | None:
        name = self.name_of(token)
        if name is None:
            return None
        now = time.time() if now is None else now
        self._sessions = {k: s for k, s in self._sessions.items() if s.expires_at > now}
        session_id = secrets.token_urlsafe(32)
        session = Session(name, secrets.token_urlsafe(32), now + SESSION_S)
        self._sessions[session_id] = session
        return session_id, session

    def session(self, session_id: str | None, now: float | None = None) -> Session | None:
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        now = time.time() if now is None else now
        if session is None or session.expires_at <= now:
            return None
        return session

    def sign_out(self, session_id: str | None) -> None:
        if session_id:
            self._sessions.pop(session_id, None)

    def form_signer(self, session: Session | None, csrf: str | None) -> str | None:
        """The session's name when the form carries the session's CSRF token."""
        if session is None or not csrf:
            return None
        return session.name if hmac.compare_digest(csrf.encode(), session.csrf.encode()) else None

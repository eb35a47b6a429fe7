"""Standard Webhooks signatures (https://www.standardwebhooks.com): HMAC-SHA256 over
`id.timestamp.body`, sent as `webhook-signature: v1,<base64>`."""

from __future__ import annotations

import base64
import hashlib
import hmac


def signing_key(secret: str) -> bytes:
    """`whsec_<base64>` secrets (the standard's form) decode to their bytes; others are used as
    UTF-8, so a plain shared secret works too."""
    if secret.startswith("whsec_"):
        return base64.b64decode(secret.removeprefix("whsec_"))
    return secret.encode()


def sign(key: bytes, delivery_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(key: bytes, delivery_id: str, timestamp: int, body: bytes, header: str) -> bool:
    """What a receiver does: any of the space-separated signatures may match."""
    expected = sign(key, delivery_id, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in header.split())

"""The headers of one request: a template's own never replace the webhook's identity,
signature or Livechat token; the receiver's static headers and bearer token come last."""

from __future__ import annotations

from streams.core.expressions import Request
from streams.delivery.webhook_client import TOKEN_HEADER, Credentials, WebhookClient
from streams.settings import load_settings
from topics.records import WebhookJob

SECRET = "whsec_" + "c2lnbmluZy1zZWNyZXQtc2lnbmluZy1zZWNyZXQ="


def test_a_templates_headers_cannot_replace_the_webhooks_own() -> None:
    client = WebhookClient(load_settings())
    job = WebhookJob("d-1", "LivechatSession", "r", "http://crm/hook", {}, "t", sequence=3)
    credentials = Credentials.of("crm-token", [SECRET])
    credentials = Credentials(credentials.token, credentials.keys, None,
                              headers=(("X-Api-Key", "k-1"),))  # fmt: skip
    request = Request(b"{}", "PUT", "/notes", {"webhook-id": "forged", "X-Room": "r",
                                               TOKEN_HEADER: "forged", "X-Api-Key": "forged"})  # fmt: skip
    headers = client.request_headers(job, b"{}", 1700000000, credentials, request, "tok")
    assert headers["webhook-id"] == "d-1" and headers[TOKEN_HEADER] == "crm-token"
    assert headers["webhook-sequence"] == "3" and headers["webhook-signature"].startswith("v1,")
    assert headers["X-Room"] == "r"  # a template's own header goes
    assert headers["X-Api-Key"] == "k-1"  # the endpoint's static header wins
    assert headers["Authorization"] == "Bearer tok"

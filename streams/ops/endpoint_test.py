"""`omnihooks endpoints test WORKSPACE/ENDPOINT [--type close|message|start|taken]
[--dry-run]`: a sample webhook through the endpoint's filter, template and authentication,
sent as a worker would send it (the same client, the same headers), with the request
printed as sent (secrets masked) and the receiver's answer."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from streams.core.clock import iso
from streams.core.endpoints import EndpointDirectory, mask
from streams.core.expressions import ExpressionError, Request, render
from streams.delivery.oauth2 import TokenError
from streams.delivery.targets import Targets
from streams.delivery.webhook_client import TOKEN_HEADER, WebhookClient
from streams.ops.samples import sample_of
from streams.settings import Settings
from topics import codec
from topics.records import EndpointRecord, WebhookJob


@dataclass
class TestSend:
    """What `endpoints test` did: its lines, and whether the receiver took it."""

    lines: list[str] = field(default_factory=list)
    ok: bool = True

    def say(self, line: str) -> None:
        self.lines.append(line)


async def test_send(
    settings: Settings, record: EndpointRecord, kind: str, dry_run: bool
) -> TestSend:
    out = TestSend()
    webhook_type, body = sample_of(settings, record, kind)
    job = WebhookJob(
        delivery_id=str(uuid.uuid4()), type=webhook_type, room_id="sample-room",
        url=record.url, body=codec.loads(body), created_at=iso(time.time()),
        workspace=record.workspace, endpoint_id=record.id, sequence=1,
    )  # fmt: skip
    out.say(f"sample: {webhook_type} (--type {kind}) for {record.workspace}/{record.id}")
    if record.filter:
        if not EndpointDirectory.passes(record, body, job.delivery_id):
            out.say("filter: no match: this endpoint would not get this webhook")
            return out
        out.say("filter: match")
    directory = EndpointDirectory(None, settings.compat)
    directory.apply(record.key(), record.to_json())
    target = Targets(settings, directory).of(job)
    request: Request | None = None
    if target.gone:
        out.say(f"not sent: {target.gone}")
        out.ok = False
        return out
    if target.template:
        try:
            request = render(target.template, body)
        except ExpressionError as exc:
            out.say(f"not sent: {exc}")
            out.ok = False
            return out
    client = WebhookClient(settings)
    credentials = target.credentials
    bearer = None
    if credentials is not None and credentials.tokens is not None:
        if dry_run:
            bearer = "(fetched when sent)"
        else:
            try:
                bearer = await credentials.tokens.token()
            except TokenError as exc:
                out.say(f"not sent: oauth2: {exc}")
                out.ok = False
                return out
    sent_body = request.body if request is not None else body
    headers = client.request_headers(job, sent_body, int(time.time()), credentials, request, bearer)
    secret_names = {name.lower() for name in record.headers}
    secret_names |= {"authorization", TOKEN_HEADER.lower()}
    method = request.method if request is not None else "POST"
    out.say(f"{method} {record.url}{request.path if request is not None else ''}")
    for name, value in headers.items():
        shown = mask(value) if name.lower() in secret_names else value
        out.say(f"{name}: {shown}")
    out.say("")
    out.say(codec.dumps_pretty(codec.loads(sent_body)).rstrip())
    if dry_run:
        out.say("(--dry-run: not sent)")
        return out
    try:
        answer = await client.post(job, credentials=credentials, request=request)
    finally:
        await client.close()
    attempt = answer.attempt
    out.ok = attempt.status is not None and 200 <= attempt.status < 300
    out.say("")
    out.say(f"answer: {f'HTTP {attempt.status}' if attempt.status else attempt.error} "
            f"in {attempt.duration_ms:.0f} ms")  # fmt: skip
    if attempt.response_excerpt:
        out.say(attempt.response_excerpt)
    return out

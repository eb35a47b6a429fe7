"""`omnihooks receive`: a small webhook receiver that answers 200 and prints what it gets.

Paths under /fail answer 500. `GET /arrivals` lists (webhook-id, time) of what it accepted
(`DELETE /arrivals` forgets them): the benchmark reads its latencies there.

For trying omnihooks without a CRM (the compose file's demo receiver) and for the benchmark's
ceiling. Not a CRM: it keeps nothing.
"""

from __future__ import annotations

import sys
import time

from aiohttp import web

from streams.delivery.webhook_client import TOKEN_HEADER
from topics import codec


def build_receiver(quiet: bool = False, answer: bytes = b"") -> web.Application:
    # (webhook-id, arrival time) of every 2xx-answered request, for `GET /arrivals`
    arrivals: list[tuple[str, float]] = []

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        if request.path.startswith("/fail"):
            return web.Response(status=500)  # the benchmark's failing endpoint
        arrivals.append((request.headers.get("webhook-id", ""), time.time()))
        if not quiet:
            headers = request.headers
            token = "token ok" if headers.get(TOKEN_HEADER) else "no token"
            signatures = len(headers.get("webhook-signature", "").split())
            try:
                kind = codec.loads(body).get("type", "?")
            except (codec.JSONDecodeError, AttributeError):
                kind = "?"
            sys.stdout.write(
                f"{request.path} {kind} #{headers.get('webhook-sequence', '-')} "
                f"{headers.get('webhook-id', '-')} {token} {signatures} signature(s) "
                f"{len(body)}B\n"
            )
            sys.stdout.flush()
        return web.Response(status=200, body=answer)

    async def report_arrivals(request: web.Request) -> web.Response:
        return web.Response(body=codec.dumps(arrivals), content_type="application/json")

    async def forget_arrivals(request: web.Request) -> web.Response:
        arrivals.clear()
        return web.Response(status=204)

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_route("GET", "/arrivals", report_arrivals)
    app.router.add_route("DELETE", "/arrivals", forget_arrivals)
    app.router.add_route("POST", "/{tail:.*}", receive)
    return app


def run_receiver(host: str, port: int, quiet: bool) -> None:
    web.run_app(build_receiver(quiet), host=host, port=port, print=None, access_log=None)

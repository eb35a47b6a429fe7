"""`omnihooks receive`: a small webhook receiver that answers 200 and prints what it gets.

For trying omnihooks without a CRM (the compose file's demo receiver) and for the benchmark's
ceiling. Not a CRM: it keeps nothing.
"""

from __future__ import annotations

import sys

from aiohttp import web

from streams.webhook_client import TOKEN_HEADER


def build_receiver(quiet: bool = False, answer: bytes = b"") -> web.Application:
    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        if not quiet:
            token = "token ok" if request.headers.get(TOKEN_HEADER) else "no token"
            sys.stdout.write(
                f"{request.headers.get('webhook-id', '-')} {token} {len(body)}B "
                f"{body[:200].decode('utf-8', 'replace')}\n"
            )
            sys.stdout.flush()
        return web.Response(status=200, body=answer)

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_route("POST", "/{tail:.*}", receive)
    return app


def run_receiver(host: str, port: int, quiet: bool) -> None:
    web.run_app(build_receiver(quiet), host=host, port=port, print=None, access_log=None)

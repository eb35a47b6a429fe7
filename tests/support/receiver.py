"""A real HTTP receiver (aiohttp.web on 127.0.0.1) run in a thread, recording every request.

Paths choose the behaviour, so one receiver serves a whole test:
  /ok                 200 with an empty body
  /crm                200 with a JSON body (becomes crmData)
  /fail/<n>/<tag>     500 for the first n requests to that path, then 200
  /status/<code>      always that status
  /hang               never answers in time (sleeps 30 s)
  /slow/<seconds>     200 after that many seconds
  /reset              closes the connection before answering
  /trickle            200 headers, then one byte every 0.5 s for 20 s
  /redirect           302 to /ok
  /huge               200 with a 10 MB body
  /outage/<name>      503 while <name> is in `down`, else 200
  /busy/<n>/<s>       429 with Retry-After <s> for the first n requests, then 200
  /ordered/<name>     500 while `failing` counts failures left for the request's (name,
                      room id in the body's `_id`, `webhook-sequence` header), else 200
  /token              an OAuth2 token endpoint (tests/support/token_server.py)
  /bearer             200 for a bearer token /token issued (and not refused), else 401
  /otlp/...           200: an OTLP/HTTP collector (the spans' export requests are kept)
Any method is taken (a template may PUT or PATCH); each request's method and query are kept.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.support.token_server import TokenServer
from topics import codec


@dataclass
class Received:
    at: float
    path: str
    headers: dict[str, str]
    body: bytes
    status: int | None = None  # what the receiver answered (None: it hung up)
    method: str = "POST"
    query: str = ""

    def json(self) -> Any:
        return codec.loads(self.body)


@dataclass
class Receiver:
    host: str = "127.0.0.1"
    port: int = 0
    ssl_context: Any = None  # an ssl.SSLContext to serve HTTPS
    requests: list[Received] = field(default_factory=list)
    crm_answer: bytes = b'{"contactId": "crm-42"}'
    down: set[str] = field(default_factory=set)  # /outage/<name> answers 503 while listed
    failing: dict[tuple[str, str, int], int] = field(default_factory=dict)  # see /ordered
    tokens: TokenServer = field(default_factory=TokenServer)  # see /token and /bearer
    _counts: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{self.host}:{self.port}{path}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        path = request.path
        received = Received(time.time(), path, dict(request.headers), body,
                            method=request.method, query=request.query_string)  # fmt: skip
        with self._lock:
            self.requests.append(received)
            self._counts[path] = count = self._counts.get(path, 0) + 1
        response = await self._answer(request, path, count)
        received.status = None if path.startswith("/reset") else response.status
        return response

    async def _answer(self, request: web.Request, path: str, count: int) -> web.StreamResponse:
        parts = path.strip("/").split("/")
        if parts[0] in ("ok", "otlp"):  # /otlp/v1/traces: an OTLP/HTTP collector's path
            return web.Response(status=200)
        if parts[0] == "token":
            status, headers, text = self.tokens.token_response(
                str(request.url), (await request.read()).decode(), dict(request.headers)
            )
            return web.Response(status=status, headers=headers, text=text)
        if parts[0] == "bearer":
            granted = self.tokens.accepts(request.headers.get("Authorization", ""))
            return web.Response(status=200 if granted else 401)
        if parts[0] == "crm":
            return web.Response(status=200, body=self.crm_answer, content_type="application/json")
        if parts[0] == "fail":
            return web.Response(status=500 if count <= int(parts[1]) else 200)
        if parts[0] == "outage":
            return web.Response(status=503 if parts[1] in self.down else 200)
        if parts[0] == "ordered":
            room = codec.loads(await request.read()).get("_id")
            webhook = (parts[1], room, int(request.headers.get("webhook-sequence", "0")))
            with self._lock:
                left = self.failing.get(webhook, 0)
                if left > 0:
                    self.failing[webhook] = left - 1
            return web.Response(status=500 if left > 0 else 200)
        if parts[0] == "busy":  # /busy/<n>/<retry-after>: 429 with Retry-After n times
            if count <= int(parts[1]):
                return web.Response(status=429, headers={"Retry-After": parts[2]})
            return web.Response(status=200)
        if parts[0] == "status":
            return web.Response(status=int(parts[1]))
        if parts[0] == "hang":
            await asyncio.sleep(30)
            return web.Response(status=200)
        if parts[0] == "slow":
            await asyncio.sleep(float(parts[1]))
            return web.Response(status=200)
        if parts[0] == "reset":
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=200)
        if parts[0] == "trickle":
            response = web.StreamResponse(status=200)
            response.content_length = 40
            await response.prepare(request)
            for _ in range(40):
                await response.write(b"x")
                await asyncio.sleep(0.5)
            return response
        if parts[0] == "redirect":
            raise web.HTTPFound("/ok")
        if parts[0] == "huge":
            return web.Response(status=200, body=b"y" * 10_000_000)
        return web.Response(status=404)

    def start(self) -> Receiver:
        ready = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            app = web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_route("*", "/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app, handle_signals=False)
            self._loop.run_until_complete(self._runner.setup())
            # Hanging handlers (/hang) must not hold the test's teardown for a minute.
            site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.ssl_context,
                               shutdown_timeout=1.0)  # fmt: skip
            self._loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._runner.cleanup())
            self._loop.close()

        self._thread = threading.Thread(target=serve, daemon=True, name="receiver")
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the test receiver did not start")
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def at(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def wait_for(self, path: str, count: int, timeout_s: float = 60.0) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = self.at(path)
            if len(got) >= count:
                return got
            time.sleep(0.05)
        raise AssertionError(f"{len(self.at(path))} of {count} requests reached {path}")

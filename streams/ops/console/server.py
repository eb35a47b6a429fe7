"""The console's web server: aiohttp handlers over `reads` (Kafka), `workers` (the workers'
pages), `tasks` (replays and purges) and `pages` (HTML). State changes go through
`authorized`, which wants a bearer token or a signed-in session whose CSRF token the form
carries."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from aiohttp import web
from multidict import MultiDictProxy

from streams.core.endpoints import endpoint_label
from streams.ops.console import pages
from streams.ops.console.access import SESSION_COOKIE, SESSION_S, Access
from streams.ops.console.assets import CSS, JS
from streams.ops.console.pages import EndpointRow, Viewer
from streams.ops.console.reads import KafkaReads
from streams.ops.console.samples import History
from streams.ops.console.tasks import PENDING_S, Pending, Tasks
from streams.ops.console.workers import WorkerPages
from streams.ops.dead_letters import Entry, FilterError, build_filters

log = logging.getLogger("omnihooks.console")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
SECURITY_HEADERS = {
    # Everything the page loads comes from the console itself; no page may frame it.
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # same-origin: other sites get no referrer; the console's own forms keep their Origin
    # header (under no-referrer, browsers send `Origin: null`, which the checks refuse).
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def safe_next(path: str) -> str:
    """A path on this console to go to after sign-in; anything else (another host, a
    scheme, `/\\host`, control characters) is the overview."""
    parts = urlsplit(path)
    if (
        not path.startswith("/")
        or path.startswith("//")
        or "\\" in path
        or parts.scheme
        or parts.netloc
        or any(ord(c) < 32 for c in path)
    ):
        return "/"
    return path


class Refused(Exception):
    """A request that is not allowed: the status and the page that says why."""

    def __init__(self, status: int, title: str, text: str) -> None:
        super().__init__(text)
        self.status, self.title, self.text = status, title, text


@dataclass
class Console:
    reads: KafkaReads
    access: Access
    workers: Sequence[str]
    window_s: float = 900.0
    scrape_s: float = 5.0
    private_reads: bool = False  # bound beyond loopback: every page wants a signed-in viewer
    history: History = field(default_factory=History)
    worker_pages: WorkerPages = field(init=False)
    running: Tasks = field(init=False)
    _sign_in_failures: asyncio.Lock | None = None

    def __post_init__(self) -> None:
        self.history.keep_s = self.window_s + 60
        self.worker_pages = WorkerPages(self.workers, self.history)
        self.running = Tasks(self.reads.dead_letter_topic)

    async def sample_forever(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                await self.worker_pages.read()
            await asyncio.sleep(self.scrape_s)

    # -- who is asking -----------------------------------------------------------------------

    def viewer(self, request: web.Request) -> Viewer:
        session = self.access.session(request.cookies.get(SESSION_COOKIE))
        name = session.name if session else self.access.bearer(request.headers.get("Authorization"))
        return Viewer(name, session.csrf if session else "", self.access.enabled)

    def authorized(self, request: web.Request, form: Mapping[str, Any]) -> str:
        """The name of whoever may make this change, or Refused."""
        if not self.access.enabled:
            raise Refused(
                403,
                "Read-only",
                "This console is read-only: start it with "
                "OMNIHOOKS_CONSOLE_TOKEN set to replay, purge, pause or resume.",
            )
        name = self.access.bearer(request.headers.get("Authorization"))
        if name is not None:
            return name  # a script: no cookie, so no cross-site request can carry it
        session = self.access.session(request.cookies.get(SESSION_COOKIE))
        if session is None:
            raise Refused(
                401,
                "Sign in first",
                "Changing anything needs the console token: "
                "sign in, or send Authorization: Bearer <token>.",
            )
        origin = request.headers.get("Origin")
        # Behind a TLS proxy the scheme differs; the host and port must not.
        if origin is not None and (origin == "null" or urlsplit(origin).netloc != request.host):
            raise Refused(403, "Refused", "A form posted from another site changes nothing.")
        signer = self.access.form_signer(session, str(form.get("csrf", "")))
        if signer is None:
            raise Refused(
                403,
                "Refused",
                "The form's CSRF token is missing or stale: reload the page and try again.",
            )
        return signer

    # -- overview ----------------------------------------------------------------------------

    async def overview(self, request: web.Request) -> web.StreamResponse:
        entries, waiting, endpoints, controls, _ = await asyncio.gather(
            asyncio.to_thread(self.reads.dead_letters),
            asyncio.to_thread(self.reads.waiting_for_retry),
            asyncio.to_thread(self.reads.endpoints),
            asyncio.to_thread(self.reads.controls),
            self.worker_pages.read(),
        )
        now = time.time()
        started = self.history.started_at() or now
        window_s = max(60.0, min(self.window_s, now - started))
        rows: dict[str, EndpointRow] = {}

        def row(label: str) -> EndpointRow:
            return rows.setdefault(label, EndpointRow(label))

        for endpoint in endpoints:
            row(endpoint_label(endpoint["url"])).names.append(
                f"{endpoint['workspace']}/{endpoint['id']}"
            )
        for label, seen in self.history.window(now, window_s).items():
            r = row(label)
            r.delivered, r.failed, r.dead_lettered = seen.delivered, seen.failed, seen.dead_lettered
            r.p50_s, r.p99_s = seen.p50_s, seen.p99_s
            r.delivered_bins, r.failed_bins = seen.delivered_bins, seen.failed_bins
        states: dict[str, list[str]] = {}
        for breakers in self.worker_pages.breakers.values():
            for breaker in breakers:
                states.setdefault(breaker.endpoint, []).append(breaker.state)
        for url, control in controls.items():
            if control.paused:
                states.setdefault(endpoint_label(url), []).append("paused")
        for label, found in states.items():
            row(label).state = pages.merge_state(found)
        for label, n in waiting.by_endpoint.items():
            row(label).waiting = n
        for entry in entries:
            if not (entry.replayed or entry.purged):
                row(endpoint_label(entry.letter.job.url)).open_dead_letters += 1
        ordered = sorted(
            rows.values(), key=lambda r: (not r.failing, -pages.STATE_RANK.get(r.state, 0), r.label)
        )
        unresolved = [w for w in self.workers if w in self.worker_pages.unresolved]
        workers = [self.worker_pages.view(w) for w in [*self.worker_pages.current, *unresolved]]
        return html(
            pages.overview_page(ordered, workers, window_s, waiting.at_least, self.viewer(request))
        )

    # -- dead letters --------------------------------------------------------------------------

    async def _matching(self, values: Mapping[str, str], include_purged: bool) -> list[Entry]:
        types = [values["type"]] if values.get("type") else []
        filters = build_filters(
            since=values.get("since") or None,
            until=values.get("until") or None,
            types=types,
            room=values.get("room") or None,
            url=values.get("url") or None,
            status=values.get("status") or None,
            endpoint=values.get("endpoint") or None,
            workspace=values.get("workspace") or None,
        )
        entries = await asyncio.to_thread(self.reads.dead_letters)
        return [e for e in entries if filters.matches(e) and (include_purged or not e.purged)]

    async def dead_letters(self, request: web.Request) -> web.StreamResponse:
        values = {k: request.query.get(k, "").strip() for k in pages.FILTER_FIELDS}
        include_purged = request.query.get("all") == "1"
        try:
            entries = await self._matching(values, include_purged)
            error, status = None, 200
        except FilterError as exc:
            entries, error, status = [], str(exc).replace("--", ""), 400
        return html(
            pages.dead_letters_page(entries, values, include_purged, error, self.viewer(request)),
            status,
        )

    def _actionable(self, verb: str, entries: list[Entry], force: bool) -> tuple[list[Entry], int]:
        """Leave out what a running task holds and, unless forced, what was replayed."""
        running = self.running.busy
        kept = [
            e
            for e in entries
            if e.entry_id not in running and (verb != "replay" or force or not e.replayed)
        ]
        return kept, len(entries) - len(kept)

    async def _selection(self, form: MultiDictProxy[Any]) -> tuple[str, list[Entry], int]:
        """What a dead-letter form asks for: the action, its entries, how many were left out."""
        verb, _, scope = str(form.get("action", "")).partition("-")
        if verb not in ("replay", "purge") or scope not in ("selected", "matching"):
            raise Refused(400, "Nothing to do", "Choose replay or purge.")
        values = {k: str(form.get(f"f_{k}", "")) for k in pages.FILTER_FIELDS}
        try:
            entries = await self._matching(values, form.get("f_all") == "1")
        except FilterError as exc:
            raise Refused(400, "Bad filter", str(exc)) from None
        if scope == "selected":
            chosen = {str(v) for v in form.getall("id", [])}
            if not chosen:
                raise Refused(400, "Nothing selected", "Tick at least one dead letter.")
            entries = [e for e in entries if e.entry_id in chosen]
        entries, skipped = self._actionable(verb, entries, form.get("force") == "1")
        if not entries:
            left = f" ({skipped} already replayed or being replayed)." if skipped else "."
            raise Refused(400, "Nothing to do", f"No dead letter is left to {verb}{left}")
        return verb, entries, skipped

    @staticmethod
    def _target(form: Mapping[str, Any]) -> str | None:
        target = str(form.get("target_url", "")).strip() or None
        if target is not None and not target.startswith(("http://", "https://")):
            raise Refused(400, "Bad URL", "The new URL must start with http:// or https://.")
        return target

    async def confirm(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        who = self.authorized(request, form)
        verb, entries, skipped = await self._selection(form)
        target = self._target(form) if verb == "replay" else None
        pending = Pending(
            who,
            verb,
            frozenset(e.entry_id for e in entries),
            target,
            form.get("force") == "1",
            time.time() + PENDING_S,
        )
        pending_id = self.running.hold(pending)
        return html(
            pages.confirm_page(verb, entries, target, skipped, pending_id, self.viewer(request))
        )

    async def act(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        who = self.authorized(request, form)
        verb = request.match_info["verb"]
        if "pending" in form:  # a confirmation page's answer: exactly what it showed
            pending = self.running.take(str(form["pending"]), who)
            if pending is None or pending.action != verb:
                raise Refused(
                    409,
                    "Confirmation expired",
                    "That confirmation was used, is "
                    "older than 10 minutes, or was shown to someone else.",
                )
            everything = await asyncio.to_thread(self.reads.dead_letters)
            chosen = [e for e in everything if e.entry_id in pending.entry_ids]
            entries, _ = self._actionable(verb, chosen, pending.force)
            target = pending.target
        else:  # a script with its token names the selection itself
            asked, entries, _ = await self._selection(form)
            if asked != verb:
                raise Refused(400, "Mismatch", "The action is not this address's action.")
            target = self._target(form) if verb == "replay" else None
        if not entries:
            raise Refused(
                409, "Nothing to do", "Those dead letters were replayed or purged in the meantime."
            )
        task = self.running.start(verb, who, entries, target)
        raise web.HTTPSeeOther(f"/tasks/{task.task_id}")

    async def task(self, request: web.Request) -> web.StreamResponse:
        task_id = request.match_info["task"]
        task = self.running.tasks.get(task_id.removesuffix(".json"))
        if task is None:
            raise web.HTTPNotFound(text="no such task (the console keeps its last 100)")
        if task_id.endswith(".json"):
            return web.json_response(task.as_json())
        return html(pages.task_page(task, self.viewer(request)))

    # -- rejected input and endpoints ----------------------------------------------------------

    async def rejected(self, request: web.Request) -> web.StreamResponse:
        limit = 50
        found = await asyncio.to_thread(self.reads.rejected, limit)
        return html(pages.rejected_page(found, limit, self.viewer(request)))

    async def endpoints(self, request: web.Request) -> web.StreamResponse:
        endpoints, controls, _ = await asyncio.gather(
            asyncio.to_thread(self.reads.endpoints),
            asyncio.to_thread(self.reads.controls),
            self.worker_pages.read(),
        )
        breakers = [b for found in self.worker_pages.breakers.values() for b in found]
        paused = {url: c for url, c in controls.items() if c.paused}
        return html(pages.endpoints_page(endpoints, breakers, paused, self.viewer(request)))

    async def test_endpoint(self, request: web.Request) -> web.StreamResponse:
        """The Test button: `omnihooks endpoints test` for one endpoint (an operator's)."""
        from streams.core.endpoints import EndpointError
        from streams.ops.endpoint_admin import EndpointsTopic
        from streams.ops.endpoint_test import test_send
        from streams.ops.samples import SAMPLE_TYPES

        form = await request.post()
        who = self.authorized(request, form)
        ref = str(form.get("endpoint", "")).strip()
        kind = str(form.get("type", "close"))
        if kind not in SAMPLE_TYPES:
            raise Refused(400, "No such sample", f"Pick one of {', '.join(SAMPLE_TYPES)}.")
        settings = self.reads.settings
        try:
            record = await asyncio.to_thread(EndpointsTopic(settings).named, ref)
        except EndpointError:
            raise Refused(404, "No such endpoint", f"No endpoint {ref}.") from None
        sent = await test_send(settings, record, kind, dry_run=bool(form.get("dry_run")))
        log.info("console: %s tested %s (%s)", who, ref, "taken" if sent.ok else "not taken")
        return html(pages.endpoint_test_page(ref, sent.lines, sent.ok, self.viewer(request)))

    async def _urls_for(self, wanted: str) -> list[str]:
        """The full URLs an endpoint reference on the page stands for: `workspace/id`, or a
        URL as the page shows it (without query string), matched against the endpoints and
        the controls, which hold the URLs whole."""
        endpoints, controls = await asyncio.gather(
            asyncio.to_thread(self.reads.endpoints), asyncio.to_thread(self.reads.controls)
        )
        if not wanted.startswith(("http://", "https://")):
            return [e["url"] for e in endpoints if f"{e['workspace']}/{e['id']}" == wanted]
        known = {e["url"] for e in endpoints} | set(controls)
        return sorted(u for u in known if endpoint_label(u) == wanted or u == wanted) or [wanted]

    async def control(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        who = self.authorized(request, form)
        paused = request.match_info["verb"] == "pause"
        wanted = str(form.get("endpoint", "")).strip()
        reason = " ".join(str(form.get("reason", "")).split())[:200]
        urls = await self._urls_for(wanted)
        if not urls:
            raise Refused(400, "No such endpoint", "Name an endpoint (workspace/id) or a URL.")
        for url in urls:
            await asyncio.to_thread(
                self.reads.write_control, url, paused, f"{who}: {reason}" if reason else who
            )
            log.info(
                "console: %s %s %s%s",
                who,
                "paused" if paused else "resumed",
                endpoint_label(url),
                f" ({reason})" if reason else "",
            )
        raise web.HTTPSeeOther("/endpoints")

    # -- signing in and out --------------------------------------------------------------------

    async def login_form(self, request: web.Request) -> web.StreamResponse:
        next_path = safe_next(request.query.get("next", "/"))
        return html(pages.login_page(self.viewer(request), False, next_path))

    async def login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        signed = self.access.sign_in(str(form.get("token", "")))
        if signed is None:
            if self._sign_in_failures is None:
                self._sign_in_failures = asyncio.Lock()
            async with self._sign_in_failures:  # one wrong guess a second, whoever guesses
                await asyncio.sleep(1.0)
            log.warning("console: a sign-in with an unknown token from %s", request.remote)
            return html(pages.login_page(self.viewer(request), True, "/"), 401)
        session_id, session = signed
        log.info("console: %s signed in from %s", session.name, request.remote)
        response = web.HTTPSeeOther(safe_next(str(form.get("next", "/"))))
        response.set_cookie(
            SESSION_COOKIE,
            session_id,
            max_age=SESSION_S,
            httponly=True,
            samesite="Strict",
            secure=request.secure,
            path="/",
        )
        raise response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        session_id = request.cookies.get(SESSION_COOKIE)
        session = self.access.session(session_id)
        if session is not None and self.access.form_signer(session, str(form.get("csrf", ""))):
            self.access.sign_out(session_id)
            log.info("console: %s signed out", session.name)
        response = web.HTTPSeeOther("/")
        response.del_cookie(SESSION_COOKIE, path="/")
        raise response


def html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")


def build_app(console: Console) -> web.Application:
    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            if not console.private_reads:
                # Bound to loopback: a page asked for under another name is a DNS-rebinding
                # site reaching the console through the operator's browser.
                name = urlsplit(f"//{request.host}").hostname
                if name not in LOOPBACK_NAMES:
                    raise Refused(
                        421, "Wrong host", "This console answers on 127.0.0.1 or localhost only."
                    )
            elif (
                not request.path.startswith(("/login", "/assets/"))
                and console.viewer(request).name is None
            ):
                raise web.HTTPSeeOther("/login?" + urlencode({"next": request.path_qs}))
            response = await handler(request)
        except Refused as refused:
            response = html(
                pages.message_page(refused.title, refused.text, console.viewer(request)),
                refused.status,
            )
        except web.HTTPException as exc:
            exc.headers.update(SECURITY_HEADERS)
            raise
        except Exception as exc:
            # Kafka unreachable, a topic missing: the operator reads why, and the next
            # reload tries again.
            log.exception("console: %s %s failed", request.method, request.path)
            text = f"{type(exc).__name__}: {exc}"
            response = html(pages.message_page("Cannot read", text, console.viewer(request)), 503)
        response.headers.update(SECURITY_HEADERS)
        return response

    app = web.Application(middlewares=[guard])
    app.add_routes(
        [
            web.get("/", console.overview),
            web.get("/dead-letters", console.dead_letters),
            web.post("/dead-letters/confirm", console.confirm),
            web.post("/dead-letters/{verb:replay|purge}", console.act),
            web.get("/tasks/{task}", console.task),
            web.get("/rejected", console.rejected),
            web.get("/endpoints", console.endpoints),
            web.post("/endpoints/{verb:pause|resume}", console.control),
            web.post("/endpoints/test", console.test_endpoint),
            web.get("/login", console.login_form),
            web.post("/login", console.login),
            web.post("/logout", console.logout),
            web.get("/assets/console.css", lambda _: asset(CSS, "text/css")),
            web.get("/assets/console.js", lambda _: asset(JS, "text/javascript")),
        ]
    )

    async def sampler(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(console.sample_forever())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await console.worker_pages.close()
        await asyncio.to_thread(console.running.close)  # let running replays finish

    app.cleanup_ctx.append(sampler)
    return app


async def asset(text: str, content_type: str) -> web.Response:
    return web.Response(text=text, content_type=content_type)


async def serve(console: Console, host: str, port: int) -> None:
    runner = web.AppRunner(build_app(console), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    log.info(
        "console on http://%s:%d/ reading %d worker(s): %s",
        host,
        port,
        len(console.workers),
        ", ".join(console.workers),
    )
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()

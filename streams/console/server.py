"""The console's web server: aiohttp handlers over `reads` (Kafka), the workers' pages, and
`pages` (HTML). State changes go through `authorized`, which wants a bearer token or a
signed-in session whose CSRF token the form carries."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from multidict import MultiDictProxy

from streams.console import pages
from streams.console.access import SESSION_COOKIE, SESSION_S, Access
from streams.console.assets import CSS, JS
from streams.console.pages import BreakerView, EndpointRow, Task, Viewer, WorkerView
from streams.console.reads import KafkaReads
from streams.console.samples import History, parse_metrics
from streams.dead_letters import Entry, FilterError, build_filters
from streams.endpoints import endpoint_label

log = logging.getLogger("omnihooks.console")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
FLUSH_EVERY = 200  # records written between waits for the brokers' acknowledgement
KEPT_TASKS = 100
SECURITY_HEADERS = {
    # Everything the page loads comes from the console itself; no page may frame it.
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Refused(Exception):
    """A state change that is not allowed: the status and the page that says why."""

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
    worker_views: dict[str, WorkerView] = field(default_factory=dict)
    breakers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    tasks: dict[str, Task] = field(default_factory=dict)
    _client: aiohttp.ClientSession | None = None

    def __post_init__(self) -> None:
        self.history.keep_s = self.window_s + 60

    # -- the workers' pages ----------------------------------------------------------------

    async def scrape(self) -> None:
        """Every worker's /metrics and /endpoints, now."""
        await asyncio.gather(*(self._scrape_worker(url) for url in self.workers))

    async def _scrape_worker(self, worker: str) -> None:
        if self._client is None:
            self._client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        base = worker.rstrip("/")
        try:
            async with self._client.get(f"{base}/metrics") as answer:
                answer.raise_for_status()
                text = await answer.text()
            async with self._client.get(f"{base}/endpoints") as answer:
                statuses = (await answer.json())["endpoints"] if answer.status == 200 else []
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as exc:
            self.worker_views[worker] = WorkerView(worker, False, f"unreachable: {exc!r}"[:200])
            return
        now = time.time()
        self.history.add(worker, parse_metrics(text, now))
        self.breakers[worker] = statuses
        self.worker_views[worker] = WorkerView(worker, True, f"read at {time.strftime('%H:%M:%S')}")

    async def sample_forever(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                await self.scrape()
            await asyncio.sleep(self.scrape_s)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()

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
        if origin not in (None, "null") and origin != f"{request.scheme}://{request.host}":
            raise Refused(403, "Refused", f"A form posted from {origin} changes nothing here.")
        signer = self.access.form_signer(session, str(form.get("csrf", "")))
        if signer is None:
            raise Refused(
                403,
                "Refused",
                "The form's CSRF token is missing or stale: reload the page and try again.",
            )
        return signer

    # -- pages -------------------------------------------------------------------------------

    async def overview(self, request: web.Request) -> web.StreamResponse:
        entries, waiting, endpoints, controls, _ = await asyncio.gather(
            asyncio.to_thread(self.reads.dead_letters),
            asyncio.to_thread(self.reads.waiting_for_retry),
            asyncio.to_thread(self.reads.endpoints),
            asyncio.to_thread(self.reads.controls),
            self.scrape(),
        )
        now = time.time()
        started = self.history.started_at() or now
        window_s = max(60.0, min(self.window_s, now - started))
        windows = self.history.window(now, window_s)
        rows: dict[str, EndpointRow] = {}

        def row(label: str) -> EndpointRow:
            return rows.setdefault(label, EndpointRow(label))

        for endpoint in endpoints:
            row(endpoint_label(endpoint["url"])).names.append(
                f"{endpoint['workspace']}/{endpoint['id']}"
            )
        for label, seen in windows.items():
            r = row(label)
            r.delivered, r.failed, r.dead_lettered = seen.delivered, seen.failed, seen.dead_lettered
            r.p50_s, r.p99_s = seen.p50_s, seen.p99_s
            r.delivered_bins, r.failed_bins = seen.delivered_bins, seen.failed_bins
        states: dict[str, list[str]] = {}
        for statuses in self.breakers.values():
            for status in statuses:
                states.setdefault(status["endpoint"], []).append(status["state"])
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
            rows.values(),
            key=lambda r: (not r.failing, -pages.STATE_RANK.get(r.state, 0), r.label),
        )
        workers = [
            self.worker_views.get(w, WorkerView(w, False, "not read yet")) for w in self.workers
        ]
        return html(
            pages.overview_page(ordered, workers, window_s, waiting.at_least, self.viewer(request))
        )

    def _filters_from(self, values: Mapping[str, str]) -> Any:
        types = [values["type"]] if values.get("type") else []
        return build_filters(
            since=values.get("since") or None,
            until=values.get("until") or None,
            types=types,
            room=values.get("room") or None,
            url=values.get("url") or None,
            status=values.get("status") or None,
            endpoint=values.get("endpoint") or None,
            workspace=values.get("workspace") or None,
        )

    async def _matching(self, values: Mapping[str, str], include_purged: bool) -> list[Entry]:
        filters = self._filters_from(values)
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

    async def _selection(self, form: MultiDictProxy[Any]) -> tuple[str, list[Entry], int]:
        """What a dead-letter form asks for: the action, its entries, how many were skipped
        because they were replayed already."""
        action = str(form.get("action", ""))
        verb, _, scope = action.partition("-")
        if verb not in ("replay", "purge") or scope not in ("selected", "matching"):
            raise Refused(400, "Nothing to do", "Choose replay or purge.")
        values = {k: str(form.get(f"f_{k}", "")) for k in pages.FILTER_FIELDS}
        include_purged = form.get("f_all") == "1"
        try:
            entries = await self._matching(values, include_purged)
        except FilterError as exc:
            raise Refused(400, "Bad filter", str(exc)) from None
        if scope == "selected":
            chosen = {str(v) for v in form.getall("id", [])}
            if not chosen:
                raise Refused(400, "Nothing selected", "Tick at least one dead letter.")
            entries = [e for e in entries if e.entry_id in chosen]
        skipped = 0
        if verb == "replay" and form.get("force") != "1":
            skipped = sum(1 for e in entries if e.replayed)
            entries = [e for e in entries if not e.replayed]
        if not entries:
            raise Refused(
                400,
                "Nothing to do",
                "No dead letter is left to "
                + verb
                + (f" ({skipped} already replayed)." if skipped else "."),
            )
        return verb, entries, skipped

    @staticmethod
    def _target(form: Mapping[str, Any]) -> str | None:
        target = str(form.get("target_url", "")).strip() or None
        if target is not None and not target.startswith(("http://", "https://")):
            raise Refused(400, "Bad URL", f"{target!r} is not an http:// or https:// URL.")
        return target

    async def confirm(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        self.authorized(request, form)
        verb, entries, skipped = await self._selection(form)
        target = self._target(form) if verb == "replay" else None
        carried: dict[str, list[str]] = {
            key: [str(v) for v in form.getall(key)] for key in set(form.keys()) - {"csrf"}
        }
        return html(
            pages.confirm_page(verb, entries, target, skipped, carried, self.viewer(request))
        )

    async def act(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        who = self.authorized(request, form)
        verb, entries, _ = await self._selection(form)
        if verb != request.match_info["verb"]:
            raise Refused(400, "Mismatch", "The confirmed action is not this page's action.")
        target = self._target(form) if verb == "replay" else None
        task = Task(uuid.uuid4().hex[:12], verb, who, len(entries), target)
        self.tasks[task.task_id] = task
        while len(self.tasks) > KEPT_TASKS:
            self.tasks.pop(next(iter(self.tasks)))
        where = f" to {target}" if target else ""
        ids = [e.letter.job.delivery_id for e in entries]
        log.info(
            "console: %s asked to %s %d dead letters%s (task %s): %s",
            who,
            verb,
            len(entries),
            where,
            task.task_id,
            " ".join(ids[:100]),
        )
        asyncio.get_running_loop().run_in_executor(None, self._run, task, entries)
        raise web.HTTPSeeOther(f"/tasks/{task.task_id}")

    def _run(self, task: Task, entries: Sequence[Entry]) -> None:
        topic = self.reads.dead_letter_topic()
        try:
            for done, entry in enumerate(entries, 1):
                if task.action == "replay":
                    topic.replay(entry, task.target)
                else:
                    topic.purge(entry)
                if done % FLUSH_EVERY == 0:
                    topic.flush()
                task.done = done
            topic.flush()
            task.done, task.state = len(entries), "done"
            log.info(
                "console: task %s done: %s %s %d dead letters",
                task.task_id,
                task.who,
                "replayed" if task.action == "replay" else "purged",
                task.done,
            )
        except Exception as exc:  # shown on the task's page and logged; the console goes on
            task.state, task.error = "failed", f"{type(exc).__name__}: {exc}"
            log.error("console: task %s failed after %d: %s", task.task_id, task.done, exc)

    async def task(self, request: web.Request) -> web.StreamResponse:
        task_id = request.match_info["task"]
        as_json = task_id.endswith(".json")
        task = self.tasks.get(task_id.removesuffix(".json"))
        if task is None:
            raise web.HTTPNotFound(text="no such task (the console keeps its last 100)")
        if as_json:
            return web.json_response(task.as_json())
        return html(pages.task_page(task, self.viewer(request)))

    async def rejected(self, request: web.Request) -> web.StreamResponse:
        limit = 50
        found = await asyncio.to_thread(self.reads.rejected, limit)
        return html(pages.rejected_page(found, limit, self.viewer(request)))

    async def endpoints(self, request: web.Request) -> web.StreamResponse:
        endpoints, controls, _ = await asyncio.gather(
            asyncio.to_thread(self.reads.endpoints),
            asyncio.to_thread(self.reads.controls),
            self.scrape(),
        )
        breakers = [
            BreakerView(
                worker, s["endpoint"], s["state"], s["waiting"], s["failures"], s["reopen_in_s"]
            )
            for worker, statuses in self.breakers.items()
            for s in statuses
        ]
        paused = {url: c for url, c in controls.items() if c.paused}
        return html(pages.endpoints_page(endpoints, breakers, paused, self.viewer(request)))

    async def control(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        who = self.authorized(request, form)
        paused = request.match_info["verb"] == "pause"
        wanted = str(form.get("endpoint", "")).strip()
        reason = str(form.get("reason", "")).strip()[:200]
        url = None
        if "/" in wanted and not wanted.startswith(("http://", "https://")):
            endpoints = await asyncio.to_thread(self.reads.endpoints)
            url = next(
                (e["url"] for e in endpoints if f"{e['workspace']}/{e['id']}" == wanted), None
            )
        elif wanted.startswith(("http://", "https://")):
            url = wanted
        if url is None:
            raise Refused(400, "No such endpoint", f"{wanted!r} is neither an endpoint nor a URL.")
        await asyncio.to_thread(self.reads.write_control, url, paused, f"{who}: {reason}".strip())
        log.info(
            "console: %s %s %s%s",
            who,
            "paused" if paused else "resumed",
            endpoint_label(url),
            f" ({reason})" if reason else "",
        )
        raise web.HTTPSeeOther("/endpoints")

    async def login_form(self, request: web.Request) -> web.StreamResponse:
        return html(pages.login_page(self.viewer(request), False, request.query.get("next", "/")))

    async def login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        signed = self.access.sign_in(str(form.get("token", "")))
        if signed is None:
            await asyncio.sleep(1.0)  # a guesser gets one try a second per connection
            log.warning("console: a sign-in with an unknown token from %s", request.remote)
            return html(pages.login_page(self.viewer(request), True, "/"), 401)
        session_id, session = signed
        log.info("console: %s signed in from %s", session.name, request.remote)
        next_path = str(form.get("next", "/"))
        if not next_path.startswith("/") or next_path.startswith("//"):
            next_path = "/"  # never a redirect off the console
        response = web.HTTPSeeOther(next_path)
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
        response = web.HTTPSeeOther("/")
        response.del_cookie(SESSION_COOKIE, path="/")
        raise response


def html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")


def build_app(console: Console) -> web.Application:
    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        open_paths = ("/login", "/assets/")
        if (
            console.private_reads
            and not request.path.startswith(open_paths)
            and console.viewer(request).name is None
        ):
            raise web.HTTPSeeOther(f"/login?next={request.path}")
        try:
            response = await handler(request)
        except Refused as refused:
            response = html(
                pages.message_page(refused.title, refused.text, console.viewer(request)),
                refused.status,
            )
        except web.HTTPException as exc:
            exc.headers.update(SECURITY_HEADERS)
            raise
        response.headers.update(SECURITY_HEADERS)
        return response

    app = web.Application(middlewares=[guard], client_max_size=4 * 1024 * 1024)
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
            web.get("/login", console.login_form),
            web.post("/login", console.login),
            web.post("/logout", console.logout),
            web.get("/assets/console.css", lambda _: asset(CSS, "text/css")),
            web.get("/assets/console.js", lambda _: asset(JS, "text/javascript")),
        ]
    )

    async def sampler(app: web.Application) -> Any:
        task = asyncio.create_task(console.sample_forever())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await console.close()

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

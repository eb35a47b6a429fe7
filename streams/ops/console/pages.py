"""The console's HTML, rendered on the server from plain data: no Kafka, no HTTP here.

Everything shown passes through `esc`; job bodies and rejected records pass through
`redact` first, so a token or secret inside a payload (a visitor's livechat token, a
signing secret in a misrouted record) is never on the page; URLs are shown as their metrics
label, without a query string or user info that may hold a CRM's credentials.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from streams.core.endpoints import endpoint_label
from streams.ops.dead_letters import WEBHOOK_TYPES, Entry
from streams.ops.samples import SAMPLE_TYPES
from topics import codec

HIDDEN = "•••• (hidden)"
SECRET_KEY = re.compile(r"token|secret|password|passwd|authorization|signature|api[-_]?key", re.I)
STATE_RANK = {"paused": 4, "open": 3, "probing": 2, "closed": 1}


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


# `token: abc`, `"apiKey":"abc"`, `Authorization: Bearer abc`, `?token=abc`: the value after
# a word that names a secret, in free text such as a CRM's error answer.
SECRET_IN_TEXT = re.compile(
    r"(?P<name>token|secret|password|passwd|authorization|signature|api[-_]?key)"
    r"(?P<sep>[\"']?\s*[:=]\s*[\"']?(?:bearer\s+|basic\s+)?)(?P<value>[^\s\"',;&<>]+)",
    re.I,
)


def redact_text(text: str | None) -> str:
    """Free text with the value after each secret-naming word hidden."""
    if not text:
        return ""
    return SECRET_IN_TEXT.sub(lambda m: f"{m['name']}{m['sep']}{HIDDEN}", text)


def redact(value: Any) -> Any:
    """The value with every field whose name says token, secret, password... hidden, and
    secret-looking text inside strings too (an error message that quotes a header)."""
    if isinstance(value, Mapping):
        return {k: HIDDEN if SECRET_KEY.search(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def shown_url(url: str) -> str:
    """An endpoint URL without its query string or user info (either may hold credentials)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(invalid URL)"
    return endpoint_label(url) + ("?…" if parts.query else "")


def pretty(value: Any) -> str:
    return codec.dumps_pretty(redact(value))


def text_excerpt(text: str | None, limit: int = 4000) -> str:
    """A record's text, redacted when it is JSON, cut at `limit` characters."""
    if text is None:
        return "(not UTF-8 text)"
    try:
        text = pretty(codec.loads(text))
    except (codec.JSONDecodeError, ValueError, TypeError):
        text = redact_text(text)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text) - limit} more)"


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def count(value: float) -> str:
    return f"{value:,.0f}"


# -- the page frame ------------------------------------------------------------------------


@dataclass(frozen=True)
class Viewer:
    """Who is looking: a signed-in name (or None) and the CSRF token their forms carry."""

    name: str | None
    csrf: str
    can_sign_in: bool  # a console token is set: state changes are possible at all


OVERVIEW_REFRESH_S = 15.0

NAV = (
    ("/", "Overview"),
    ("/dead-letters", "Dead letters"),
    ("/rejected", "Rejected input"),
    ("/endpoints", "Endpoints"),
)


def page(title: str, body: str, viewer: Viewer, path: str, refresh_s: float | None = None) -> str:
    links = "".join(
        f'<a href="{href}"{" class=here" if href == path else ""}>{esc(label)}</a>'
        for href, label in NAV
    )
    if viewer.name:
        who = (
            f'<form method=post action="/logout" class=inline>{csrf_field(viewer)}'
            f"signed in as <b>{esc(viewer.name)}</b> <button>Sign out</button></form>"
        )
    elif viewer.can_sign_in:
        who = '<a href="/login">Sign in</a> to replay, purge, pause'
    else:
        who = "read-only (OMNIHOOKS_CONSOLE_TOKEN is not set)"
    refresh = f'<meta http-equiv="refresh" content="{refresh_s:g}">' if refresh_s else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">{refresh}
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)} · omnihooks console</title>
<link rel="stylesheet" href="/assets/console.css"><script src="/assets/console.js" defer></script>
</head><body>
<header><span class=brand>omnihooks</span><nav>{links}</nav><span class=who>{who}</span></header>
<main><h1>{esc(title)}</h1>
{body}
</main></body></html>"""


def csrf_field(viewer: Viewer) -> str:
    return f'<input type=hidden name=csrf value="{esc(viewer.csrf)}">'


def message_page(title: str, text: str, viewer: Viewer, path: str = "") -> str:
    return page(title, f"<p class=notice>{esc(text)}</p>", viewer, path)


def login_page(viewer: Viewer, failed: bool, next_path: str) -> str:
    note = "<p class=error>That token is not one of the console's.</p>" if failed else ""
    body = f"""{note}<form method=post action="/login" class=card>
<label>Console token <input type=password name=token autocomplete=off required autofocus></label>
<input type=hidden name=next value="{esc(next_path)}">
<button>Sign in</button></form>"""
    return page("Sign in", body, viewer, "/login")


# -- overview ------------------------------------------------------------------------------


@dataclass
class EndpointRow:
    """One endpoint on the overview: its label (URL without query) and what is known of it."""

    label: str
    names: list[str] = field(default_factory=list)  # workspace/id of endpoints with this URL
    state: str = "-"
    delivered: float = 0.0
    failed: float = 0.0
    dead_lettered: float = 0.0
    waiting: int = 0
    open_dead_letters: int = 0
    p50_s: float | None = None
    p99_s: float | None = None
    delivered_bins: Sequence[float] = ()
    failed_bins: Sequence[float] = ()

    @property
    def failing(self) -> bool:
        """More attempts failed than succeeded lately, or it is open, or dead letters wait."""
        return self.failed > self.delivered or self.state == "open" or self.open_dead_letters > 0


@dataclass(frozen=True)
class WorkerView:
    url: str
    reachable: bool
    detail: str


def sparkline(
    delivered: Sequence[float], failed: Sequence[float], w: int = 160, h: int = 32
) -> str:
    """Delivered (green) and failed (red) per interval over the window, as inline SVG."""
    if not delivered and not failed:
        return ""
    top = max([*delivered, *failed, 1.0])

    def line(values: Sequence[float], css: str) -> str:
        if not values:
            return ""
        step = w / max(1, len(values) - 1)
        points = " ".join(
            f"{i * step:.1f},{h - 2 - (v / top) * (h - 4):.1f}" for i, v in enumerate(values)
        )
        return f'<polyline class="{css}" points="{points}"/>'

    label = f"delivered {count(sum(delivered))}, failed {count(sum(failed))}"
    return (
        f'<svg class=spark width="{w}" height="{h}" viewBox="0 0 {w} {h}" role=img '
        f'aria-label="{esc(label)}">{line(delivered, "ok")}{line(failed, "bad")}</svg>'
    )


def overview_page(
    rows: Sequence[EndpointRow],
    workers: Sequence[WorkerView],
    window_s: float,
    waiting_floor: bool,
    viewer: Viewer,
) -> str:
    minutes = max(1, round(window_s / 60))
    body_rows = []
    for row in rows:
        names = "".join(f"<div class=name>{esc(n)}</div>" for n in row.names)
        dl_link = "/dead-letters?" + urlencode({"url": row.label})
        css = f"state-{esc(row.state)} {'failing' if row.failing else 'healthy'}"
        body_rows.append(f"""<tr class="{css}" data-endpoint="{esc(row.label)}">
<td><div class=url>{esc(row.label)}</div>{names}</td>
<td><span class="badge {esc(row.state)}">{esc(row.state)}</span>
{"<span class='badge failing'>failing</span>" if row.failing else ""}</td>
<td class=num>{count(row.delivered)}</td><td class=num>{count(row.failed)}</td>
<td class=num>{count(row.dead_lettered)}</td>
<td class=num>{row.waiting:,}{"+" if waiting_floor else ""}</td>
<td class=num><a href="{esc(dl_link)}" class=open-dl>{row.open_dead_letters:,}</a></td>
<td class=num>{seconds(row.p50_s)}</td><td class=num>{seconds(row.p99_s)}</td>
<td>{sparkline(row.delivered_bins, row.failed_bins)}</td></tr>""")
    if not body_rows:
        body_rows.append("<tr><td colspan=10 class=empty>No endpoint has been seen yet.</td></tr>")
    worker_items = "".join(
        f'<li class="{"up" if w.reachable else "down"}">{esc(w.url)}: {esc(w.detail)}</li>'
        for w in workers
    )
    body = f"""<p class=lead>Per endpoint over the last {minutes} min (delivered, failed attempts,
dead-lettered, POST time from the workers' /metrics); retries waiting and open dead letters are
read from Kafka now. The page reloads every {OVERVIEW_REFRESH_S:g} s.</p>
<table class=grid id=endpoints><thead><tr><th>Endpoint</th><th>State</th><th>Delivered</th>
<th>Failed attempts</th><th>Dead-lettered</th><th>Retries waiting</th><th>Open dead letters</th>
<th>p50</th><th>p99</th><th>Last {minutes} min</th></tr></thead>
<tbody>{"".join(body_rows)}</tbody></table>
<h2>Workers</h2><ul class=workers>{worker_items}</ul>"""
    # A dashboard left open at 3 a.m. stays current: the page reloads itself.
    return page("Overview", body, viewer, "/", refresh_s=OVERVIEW_REFRESH_S)


def merge_state(states: Iterable[str]) -> str:
    """The worst of the workers' states for one endpoint (paused, open, probing, closed)."""
    found = [s for s in states if s in STATE_RANK]
    return max(found, key=STATE_RANK.__getitem__) if found else "-"


# -- dead letters --------------------------------------------------------------------------

FILTER_FIELDS = ("since", "until", "type", "room", "url", "status", "endpoint", "workspace")


def _filter_form(values: Mapping[str, str], include_purged: bool) -> str:
    def box(name: str, label: str, hint: str) -> str:
        return (
            f'<label>{esc(label)} <input name={name} value="{esc(values.get(name, ""))}" '
            f'placeholder="{esc(hint)}"></label>'
        )

    options = "".join(
        f"<option{' selected' if values.get('type') == t else ''}>{esc(t)}</option>"
        for t in WEBHOOK_TYPES
    )
    return f"""<form method=get action="/dead-letters" class="card filters" id=filters>
{box("since", "Since", "2h, 30m, 2026-11-26T10:00:00Z")}{box("until", "Until", "ISO time or age")}
<label>Type <select name=type><option value="">any</option>{options}</select></label>
{box("room", "Room", "room _id")}{box("url", "URL contains", "crm.example.com")}
{box("status", "Last status", "500, 5xx, timeout")}{box("endpoint", "Endpoint id", "default")}
{box("workspace", "Workspace", "default")}
<label class=check><input type=checkbox name=all value=1{" checked" if include_purged else ""}>
include purged</label>
<button>Filter</button> <a href="/dead-letters">clear</a></form>"""


def _attempts_table(entry: Entry) -> str:
    rows = "".join(
        f"<tr><td>{i}</td><td>{esc(a.at)}</td><td>{esc(a.status if a.status is not None else '')}"
        f"</td><td>{esc(a.error or '')}</td><td class=num>{a.duration_ms:.0f} ms</td>"
        f"<td>{'probe' if a.probe else ''}</td>"
        f"<td><code>{esc(redact_text(a.response_excerpt))}</code></td></tr>"
        for i, a in enumerate(entry.letter.attempts, 1)
    )
    return (
        "<table class=attempts><thead><tr><th>#</th><th>At</th><th>Status</th><th>Error</th>"
        f"<th>Took</th><th></th><th>Answer</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _entry_rows(entry: Entry) -> str:
    job = entry.letter.job
    marks = " ".join(m for m, on in (("replayed", entry.replayed), ("purged", entry.purged)) if on)
    summary = {
        "delivery_id": job.delivery_id,
        "type": job.type,
        "room_id": job.room_id,
        "url": shown_url(job.url),
        "workspace": job.workspace or "default",
        "endpoint": job.endpoint_id or "default",
        "sequence": job.sequence,
        "created_at": job.created_at,
        "event_id": job.event_id,
        "replay_id": job.replay_id,
        "reason": entry.letter.reason,
    }
    return f"""<tr class="entry {esc(marks)}" data-entry="{esc(entry.entry_id)}">
<td><input type=checkbox name=id value="{esc(entry.entry_id)}" aria-label="select"></td>
<td>{esc(job.room_id or "-")}</td><td>{esc(job.type)}</td>
<td><code>{esc(job.delivery_id)}</code></td>
<td>{esc(shown_url(job.url))}</td><td class=num>{len(entry.letter.attempts)}</td>
<td>{esc(entry.last_outcome)}</td><td>{esc(entry.letter.dead_lettered_at)}</td><td>{esc(marks)}</td></tr>
<tr class=detail><td></td><td colspan=8><details><summary>Job, body and {len(entry.letter.attempts)}
attempts</summary><h3>Job</h3><pre>{esc(pretty(summary))}</pre><h3>Body</h3>
<pre class=body>{esc(pretty(job.body))}</pre><h3>Attempts</h3>{_attempts_table(entry)}
</details></td></tr>"""


def _hidden_filters(values: Mapping[str, str], include_purged: bool) -> str:
    kept = [(k, values[k]) for k in FILTER_FIELDS if values.get(k)]
    if include_purged:
        kept.append(("all", "1"))
    return "".join(f'<input type=hidden name="f_{esc(k)}" value="{esc(v)}">' for k, v in kept)


def dead_letters_page(
    entries: Sequence[Entry],
    values: Mapping[str, str],
    include_purged: bool,
    error: str | None,
    viewer: Viewer,
) -> str:
    shown = entries[:500]
    rows = "".join(_entry_rows(e) for e in shown) or (
        "<tr><td colspan=9 class=empty>No dead letters match.</td></tr>"
    )
    more = (
        f"<p>Showing 500 of {len(entries):,}; narrow the filters.</p>" if len(entries) > 500 else ""
    )
    problem = f"<p class=error>{esc(error)}</p>" if error else ""
    body = f"""{_filter_form(values, include_purged)}{problem}
<form method=post action="/dead-letters/confirm" id=selection>{csrf_field(viewer)}
{_hidden_filters(values, include_purged)}
<p class=count><b id=match-count>{len(entries):,}</b> dead letters match.</p>{more}
<table class=grid id=dead-letters><thead><tr><th><input type=checkbox id=select-all
aria-label="select all"></th><th>Room</th><th>Type</th><th>Delivery id</th><th>URL</th>
<th>Attempts</th><th>Last</th><th>Dead-lettered at</th><th></th></tr></thead>
<tbody>{rows}</tbody></table>
<fieldset class=card><legend>Act on the selection, or on every match</legend>
<label>Send to a new URL (optional) <input type=url name=target_url id=target-url
placeholder="https://crm.example.com/hook"></label>
<label class=check><input type=checkbox name=force value=1>
send again those already replayed</label>
<div class=buttons>
<button name=action value=replay-selected id=replay-selected>Replay selected</button>
<button name=action value=replay-matching id=replay-matching>
Replay all {len(entries):,} matching</button>
<button name=action value=purge-selected class=danger id=purge-selected>Purge selected</button>
<button name=action value=purge-matching class=danger id=purge-matching>Purge all matching</button>
</div></fieldset></form>"""
    return page("Dead letters", body, viewer, "/dead-letters")


def confirm_page(
    action: str,
    entries: Sequence[Entry],
    target: str | None,
    skipped: int,
    pending_id: str,
    viewer: Viewer,
) -> str:
    if action == "replay":
        where = esc(shown_url(target)) if target else "their own URLs"
        question = f"Replay {len(entries):,} dead letters to {where}?"
    else:
        question = f"Purge {len(entries):,} dead letters? They leave every list for good."
    note = (
        (
            f"<p>{skipped:,} already replayed or being replayed are left out (tick “send "
            "again” to include those already replayed).</p>"
        )
        if skipped
        else ""
    )
    listed = "".join(
        f"<li><code>{esc(e.letter.job.delivery_id)}</code> {esc(e.letter.job.type)} room "
        f"{esc(e.letter.job.room_id or '-')}</li>"
        for e in entries[:20]
    )
    more = f"<li>… and {len(entries) - 20:,} more</li>" if len(entries) > 20 else ""
    button = "Replay" if action == "replay" else "Purge"
    body = f"""<p class=question id=question>{question}</p>{note}<ul>{listed}{more}</ul>
<form method=post action="/dead-letters/{action}">{csrf_field(viewer)}
<input type=hidden name=pending value="{esc(pending_id)}">
<button id=confirm class="{"danger" if action == "purge" else ""}">
{button} {len(entries):,}</button>
<a href="/dead-letters">Cancel</a></form>"""
    return page(f"Confirm: {button.lower()}", body, viewer, "/dead-letters")


@dataclass
class Task:
    """A replay or purge running on the console: its progress, shown until it ends."""

    task_id: str
    action: str
    who: str
    total: int
    target: str | None
    done: int = 0
    state: str = "running"  # running, done, failed
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.task_id,
            "action": self.action,
            "who": self.who,
            "total": self.total,
            "done": self.done,
            "state": self.state,
            "error": self.error,
        }


def task_page(task: Task, viewer: Viewer) -> str:
    verb = "Replaying" if task.action == "replay" else "Purging"
    if task.state == "done":
        verb = "Replayed" if task.action == "replay" else "Purged"
    where = f" to {esc(shown_url(task.target))}" if task.target else ""
    status = {"running": "", "done": "Done.", "failed": f"Failed: {esc(task.error)}"}[task.state]
    body = f"""<div class=card id=task data-state="{esc(task.state)}"
data-task="{esc(task.task_id)}">
<p>{verb} dead letters{where}, asked by {esc(task.who)}:
<b id=progress-text>{task.done:,} of {task.total:,}</b> {status}</p>
<progress id=progress value="{task.done}" max="{max(task.total, 1)}"></progress>
</div><p><a href="/dead-letters">Back to the dead letters</a></p>"""
    refresh = 1.0 if task.state == "running" else None
    return page(f"{task.action.capitalize()} {task.total:,}", body, viewer, "", refresh_s=refresh)


# -- rejected input and endpoints ----------------------------------------------------------


def rejected_page(rejected: Sequence[Any], limit: int, viewer: Viewer) -> str:
    rows = (
        "".join(
            f"""<tr><td>{esc(r.record.rejected_at)}</td><td>{esc(r.record.topic)}
{esc(r.record.partition)}:{esc(r.record.offset)}</td><td class=reason>{esc(r.record.reason)}</td>
<td><details><summary>record</summary><pre>{esc(text_excerpt(r.record.value_text))}</pre>
</details></td></tr>"""
            for r in rejected
        )
        or "<tr><td colspan=4 class=empty>Nothing was rejected.</td></tr>"
    )
    body = f"""<p class=lead>The latest {limit} input records the workers could not use, with the
reason, newest first. The rejected topic keeps them whole (`omnihooks`'s rejected topic).</p>
<table class=grid id=rejected><thead><tr><th>Rejected at</th><th>From</th><th>Reason</th>
<th></th></tr></thead><tbody>{rows}</tbody></table>"""
    return page("Rejected input", body, viewer, "/rejected")


@dataclass(frozen=True)
class BreakerView:
    worker: str
    endpoint: str
    state: str
    waiting: int
    failures: int
    reopen_in_s: float | None


def endpoints_page(
    endpoints: Sequence[Mapping[str, Any]],
    breakers: Sequence[BreakerView],
    paused: Mapping[str, Any],
    viewer: Viewer,
) -> str:
    def control(target: str, is_paused: bool) -> str:
        action = "resume" if is_paused else "pause"
        return (
            f'<form method=post action="/endpoints/{action}" class=inline>{csrf_field(viewer)}'
            f'<input type=hidden name=endpoint value="{esc(target)}">'
            f'<input name=reason placeholder="reason" class=reason>'
            f'<button class="{action}">{action.capitalize()}</button></form>'
        )

    samples = "".join(f"<option>{kind}</option>" for kind in SAMPLE_TYPES)

    def tester(ref: str) -> str:
        return (
            f'<form method=post action="/endpoints/test" class=inline>{csrf_field(viewer)}'
            f'<input type=hidden name=endpoint value="{esc(ref)}">'
            f"<select name=type>{samples}</select>"
            "<label><input type=checkbox name=dry_run value=1> dry run</label>"
            '<button class="test">Test</button></form>'
        )

    defined = []
    for e in endpoints:
        ref = f"{e['workspace']}/{e['id']}"
        is_paused = e["url"] in paused
        programs = "".join(
            f"<div><b>{kind}</b> <code>{esc(e[kind])}</code></div>"
            for kind in ("filter", "template") if e.get(kind)
        ) or "-"  # fmt: skip
        defined.append(f"""<tr data-endpoint="{esc(ref)}"><td>{esc(ref)}</td>
<td>{esc(shown_url(e["url"]))}</td><td>{"enabled" if e["enabled"] else "disabled"}</td>
<td>{esc(", ".join(e["triggers"]) or "-")}</td><td class=programs>{programs}</td>
<td>{esc(e.get("source", ""))}</td>
<td>{"paused" if is_paused else ""}</td><td>{control(ref, is_paused)}{tester(ref)}</td></tr>""")
    breaker_rows = (
        "".join(
            f"""<tr data-endpoint="{esc(b.endpoint)}"><td>{esc(b.worker)}</td>
<td>{esc(b.endpoint)}</td>
<td><span class="badge {esc(b.state)}">{esc(b.state)}</span></td><td class=num>{b.waiting:d}</td>
<td class=num>{b.failures:d}</td><td>{"" if b.reopen_in_s is None else f"{b.reopen_in_s:g} s"}</td>
<td>{control(b.endpoint, b.state == "paused")}</td></tr>"""
            for b in breakers
        )
        or "<tr><td colspan=7 class=empty>No worker has seen an endpoint yet.</td></tr>"
    )
    paused_rows = (
        "".join(
            f"<tr><td>{esc(shown_url(url))}</td><td>{esc(c.at)}</td><td>{esc(c.reason)}</td>"
            f"<td>{control(endpoint_label(url), True)}</td></tr>"
            for url, c in paused.items()
        )
        or "<tr><td colspan=3 class=empty>No endpoint is paused.</td></tr>"
    )
    if not defined:
        defined.append(
            "<tr><td colspan=8 class=empty>None: set OMNIHOOKS_WEBHOOK_URL or run "
            "`omnihooks endpoints add`.</td></tr>"
        )
    body = f"""<h2>Circuit breakers, per worker</h2>
<table class=grid id=breakers><thead><tr><th>Worker</th><th>Endpoint</th><th>State</th>
<th>Held</th><th>Failures</th><th>Reopens in</th><th></th></tr></thead><tbody>{breaker_rows}</tbody>
</table>
<h2>Paused by an operator</h2><table class=grid id=paused><thead><tr><th>Endpoint</th><th>Since</th>
<th>Reason</th></tr></thead><tbody>{paused_rows}</tbody></table>
<h2>Endpoints</h2><table class=grid id=defined><thead><tr><th>Workspace/id</th><th>URL</th>
<th>State</th><th>Triggers</th><th>Filter and template</th><th>Source</th><th></th><th></th>
</tr></thead>
<tbody>{"".join(defined)}</tbody></table>"""
    return page("Endpoints", body, viewer, "/endpoints")


def endpoint_test_page(ref: str, lines: Sequence[str], ok: bool, viewer: Viewer) -> str:
    """What `endpoints test` printed, for the console's Test button."""
    verdict = "taken by the receiver" if ok else "not taken"
    body = f"""<p class=lead>A sample webhook through {esc(ref)}'s filter, template and
authentication: {verdict}.</p><pre id=endpoint-test>{esc(chr(10).join(lines))}</pre>
<p><a href="/endpoints">Back to the endpoints</a></p>"""
    return page(f"Test {ref}", body, viewer, "/endpoints")

"""`omnihooks`: the one command line (local broker, topics, worker, producer, dead letters).

Exit status: 0 on success, 2 on a usage error (argparse's own, or a bad setting/filter value
with a message on stderr), 1 on any other failure.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from streams.engine.kafka import KafkaConfig
from streams.settings import Settings, SettingsError, load_settings

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

Command = Callable[[argparse.Namespace, Settings], int]


class UsageError(Exception):
    """A bad flag or filter value: exit 2."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(args, "loglevel", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"omnihooks: {exc}", file=sys.stderr)
        return EXIT_USAGE
    command: Command = args.command
    try:
        return command(args, settings)
    except UsageError as exc:
        print(f"omnihooks: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_FAILURE
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("streams.dev"):
            raise
        print(
            "omnihooks: this command is a developer tool (kafka, demo, receive): run it from "
            "a source checkout; the container image ships the worker only",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    except Exception as exc:  # every other failure: say it plainly, exit 1
        if getattr(args, "loglevel", "INFO").upper() == "DEBUG":
            raise
        print(f"omnihooks: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILURE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="omnihooks",
        description="Kafka-native Rocket.Chat Omnichannel CRM webhooks. Settings come from "
        "OMNIHOOKS_* environment variables and KAFKA_BOOTSTRAP_SERVERS.",
    )
    parser.add_argument("--loglevel", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    kafka = commands.add_parser("kafka", help="the embedded local broker (Apache Kafka, KRaft)")
    kafka_commands = kafka.add_subparsers(required=True, metavar="ACTION")
    up = kafka_commands.add_parser("up", help="resolve, format and start it; wait until ready")
    up.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for readiness")
    up.add_argument("--secured", action="store_true", help="SASL_SSL and mutual TLS listeners, "
                    "SCRAM users, ACLs required (OMNIHOOKS_KAFKA_SECURED)")  # fmt: skip
    up.set_defaults(command=_kafka_up)
    kafka_commands.add_parser("down", help="stop it cleanly").set_defaults(command=_kafka_down)
    kafka_commands.add_parser("status", help="is it running and answering").set_defaults(
        command=_kafka_status
    )

    topics = commands.add_parser("topics", help="the topic catalogue")
    topic_commands = topics.add_subparsers(required=True, metavar="ACTION")
    apply = topic_commands.add_parser(
        "apply", help="create missing topics and the roles' changelogs, report drift "
        "(never deletes); run by an admin: workers need no right to create topics",
    )  # fmt: skip
    _add_roles(apply)
    apply.set_defaults(command=_topics_apply)
    topic_commands.add_parser("list", help="print the catalogue").set_defaults(command=_topics_list)
    render = topic_commands.add_parser(
        "render", help="Strimzi manifests: KafkaTopics (the catalogue and the roles' "
        "changelogs), or with --users a KafkaUser per role with its ACLs",
    )  # fmt: skip
    render.add_argument("--format", choices=["strimzi"], default="strimzi")
    render.add_argument("--cluster", default="kafka", help="the Strimzi Kafka cluster's name")
    render.add_argument("--namespace", default=None)
    render.add_argument("--users", action="store_true", help="KafkaUsers instead of topics")
    render.add_argument("--authentication", choices=["scram-sha-512", "tls"],
                        default="scram-sha-512", help="the KafkaUsers' authentication")  # fmt: skip
    _add_roles(render)
    render.set_defaults(command=_topics_render)

    acls = commands.add_parser(
        "acls", help="each role's Kafka rights (least privilege), shown or granted as ACLs"
    )
    acl_commands = acls.add_subparsers(required=True, metavar="ACTION")
    acl_actions = (
        ("show", "print the role's rights"),
        ("apply", "grant them to a principal (run as an admin)"),
        ("revoke", "take them back from a principal (run as an admin)"),
    )
    for action, text in acl_actions:
        acl = acl_commands.add_parser(action, help=text)
        acl.add_argument("--role", required=True, help="a role of topics/roles.toml")
        if action != "show":
            acl.add_argument("--principal", required=True, help="User:<name> or User:CN=<name>")
        acl.set_defaults(command=_acls, action=action)

    demo = commands.add_parser(
        "demo", help="publish a sample conversation (the seed's chat) to the input topics"
    )
    demo.add_argument("--room", default=None, help="room _id (default: a fresh one)")
    demo.add_argument("--workspace", default=None, help="the events' workspace (default: none)")
    demo.set_defaults(command=_demo)

    dlq = commands.add_parser("dlq", help="dead letters: list, show, replay, purge")
    dlq_commands = dlq.add_subparsers(required=True, metavar="ACTION")
    filters = argparse.ArgumentParser(add_help=False)
    filters.add_argument("--since", help="ISO 8601 time or an age (90s, 30m, 2h, 7d)")
    filters.add_argument("--until", help="ISO 8601 time or an age")
    filters.add_argument("--type", action="append", default=[], help="payload type (repeatable)")
    filters.add_argument("--room", help="room _id")
    filters.add_argument("--status", help="last attempt: 500, 5xx, or an error word (timeout)")
    filters.add_argument("--endpoint", help="endpoint id (default: the environment's)")
    filters.add_argument("--workspace", help="workspace (default: events without one)")
    listing = dlq_commands.add_parser("list", parents=[filters], help="a table of dead letters")
    listing.add_argument("--url", help="only jobs whose URL contains this")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.add_argument("--all", action="store_true", help="include purged entries")
    listing.set_defaults(command=_dlq_list)
    show = dlq_commands.add_parser("show", help="one dead letter in full")
    show.add_argument("id", help="delivery id (or entry id)")
    show.set_defaults(command=_dlq_show)
    replay = dlq_commands.add_parser("replay", parents=[filters], help="send dead letters again")
    replay.add_argument("ids", nargs="*", help="delivery ids; else the filters select")
    # The contract's `replay --url` is the new target; the URL filter is --from-url here.
    replay.add_argument("--url", dest="target_url", help="send to this URL instead of the job's")
    replay.add_argument("--from-url", dest="url", help="only jobs whose URL contains this")
    replay.add_argument("--dry-run", action="store_true", help="say what would be replayed")
    replay.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    replay.add_argument("--force", action="store_true", help="replay entries replayed before")
    replay.set_defaults(command=_dlq_replay)
    purge = dlq_commands.add_parser("purge", parents=[filters], help="hide dead letters for good")
    purge.add_argument("ids", nargs="*", help="delivery ids; else the filters select")
    purge.add_argument("--url", help="only jobs whose URL contains this")
    purge.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    purge.add_argument("--dry-run", action="store_true", help="say what would be purged")
    purge.set_defaults(command=_dlq_purge)

    endpoints = commands.add_parser(
        "endpoints", help="endpoints as data (add, list, update, rotate-secret...) and health"
    )
    endpoint_commands = endpoints.add_subparsers(required=True, metavar="ACTION")
    _add_endpoint_data_commands(endpoint_commands)
    status = endpoint_commands.add_parser(
        "status",
        help="each worker's circuit breaker per endpoint",
        description="Ask each delivery worker's web port (GET /endpoints) for its breakers: "
        "state (closed, open, probing, paused), jobs it holds, failed attempts.",
    )
    status.add_argument(
        "--worker",
        action="append",
        metavar="URL",
        help="a worker's web address (repeatable); default http://127.0.0.1:OMNIHOOKS_WEB_PORT",
    )
    status.set_defaults(command=_endpoints_status)
    for action, verb in (("pause", "hold every job for it, attempt none"),
                         ("resume", "deliver what it holds, in order, then flow")):  # fmt: skip
        control = endpoint_commands.add_parser(
            action,
            help=f"{action} an endpoint: {verb}",
            description=f"{action.capitalize()} an endpoint URL on every delivery worker (a "
            "record on the endpoint-controls topic; workers started later read it too). "
            "Lossless: a paused endpoint's jobs wait in Kafka without spending attempts.",
        )
        control.add_argument("url", help="the endpoint URL, exactly as the jobs carry it")
        control.add_argument("--reason", default="", help="kept on the record and logged")
        control.set_defaults(command=_endpoints_control, paused=action == "pause")

    ingest = commands.add_parser(
        "ingest",
        help="relay mode: take Rocket.Chat's own webhooks at /rocketchat/<workspace>",
        description="An HTTP server for Rocket.Chat's Livechat_webhookUrl: each accepted body "
        "is written to Kafka (answered 200 once acknowledged) and relayed to the workspace's "
        "endpoints by the sessions worker. Needs OMNIHOOKS_INGEST_TOKEN.",
    )
    ingest.add_argument("--host", default="0.0.0.0", help="address to listen on")
    ingest.add_argument("--port", type=int, default=8090)
    ingest.set_defaults(command=_ingest)

    console = commands.add_parser(
        "console",
        help="the operators' web page: deliveries, dead letters, rejected input, endpoints",
        description="Serve the console: per-endpoint counts and POST times from the workers' "
        "/metrics, dead letters (filter, expand, replay, purge), rejected input and endpoint "
        "state (pause, resume), read from Kafka without touching the workers' offsets. "
        "Changes need OMNIHOOKS_CONSOLE_TOKEN (`name:token`, comma-separated).",
    )
    console.add_argument(
        "--host", default="127.0.0.1", help="address (beyond loopback: every page wants sign-in)"
    )
    console.add_argument("--port", type=int, default=6070)
    console.add_argument(
        "--worker",
        action="append",
        metavar="URL",
        help="a worker's web address (repeatable), or dns+http://NAME:PORT for every address "
        "NAME resolves to (a headless Service); default OMNIHOOKS_CONSOLE_WORKERS, else "
        "http://127.0.0.1:OMNIHOOKS_WEB_PORT",
    )
    console.set_defaults(command=_console)

    erase = commands.add_parser(
        "erase", help="erase one visitor's data (their rooms, messages, crm-data, dead letters)",
        description="Asks every partition's sessions worker to erase the visitor's rooms from "
        "the tables and their changelogs, waits for their receipts, marks the visitor's dead "
        "letters erased and prints what delete-policy topics still hold and when it ages out. "
        "Safe to run again. Exit 0 when every partition answered, 1 otherwise.",
    )  # fmt: skip
    erase.add_argument("--visitor", required=True, metavar="ID|TOKEN|EMAIL",
                       help="the visitor's _id, token or email address")  # fmt: skip
    erase.add_argument("--timeout", type=float, default=60.0,
                       help="seconds to wait for the workers' receipts (default 60)")  # fmt: skip
    erase.set_defaults(command=_erase)

    receive = commands.add_parser("receive", help="a demo webhook receiver that answers 200")
    receive.add_argument("--host", default="127.0.0.1")
    receive.add_argument("--port", type=int, default=8080)
    receive.add_argument("--quiet", action="store_true", help="print nothing per request")
    receive.set_defaults(command=_receive)

    worker = commands.add_parser(
        "worker",
        help="run the Faust worker",
        description="Run the Faust worker. Settings come from the environment (the contract's "
        "settings table); among them OMNIHOOKS_COMPAT selects the Rocket.Chat server era "
        "whose webhook bodies and retry rule are reproduced: rocketchat-2023 (default, the "
        "seed's samples) or rocketchat-7 (current servers); OMNIHOOKS_SITE_URL (Rocket.Chat's "
        "Site_Url) adds `fileUpload` links to messages with files.",
    )
    worker.add_argument("--role", choices=["all", "sessions", "delivery"], default="all")
    worker.set_defaults(command=_worker)
    return parser


def _add_endpoint_data_commands(commands: Any) -> None:
    from streams.core.endpoints import TRIGGERS
    from streams.ops.samples import SAMPLE_TYPES

    named = argparse.ArgumentParser(add_help=False)
    named.add_argument("id", help="endpoint id: letters, digits, '.', '_', '-'")
    named.add_argument("--workspace", default="default", help="its workspace (default: default)")
    named.add_argument("--json", action="store_true", help="print the endpoint as JSON")
    fields = argparse.ArgumentParser(add_help=False)
    fields.add_argument("--url", help="where its webhooks are POSTed")
    fields.add_argument("--token", help="sent as X-RocketChat-Livechat-Token")
    fields.add_argument("--triggers", help=f"comma-separated, of: {', '.join(TRIGGERS)} (or 'all')")
    fields.add_argument(
        "--navigation-history", action=argparse.BooleanOptionalAction, default=None,
        help="send page visits in bodies (Livechat_webhook_send_navigation_history)",
    )  # fmt: skip
    fields.add_argument("--compat", help="rocketchat-2023 or rocketchat-7 (default: the worker's)")
    fields.add_argument("--retry-attempts", type=int, help="retries after the first POST")
    fields.add_argument("--retry-delay-s", type=float, help="seconds between attempts")
    fields.add_argument("--timeout-ms", type=int, help="per POST")
    fields.add_argument("--concurrency", type=int, help="its POSTs in flight per worker, at most")
    fields.add_argument(
        "--crm-answers", action=argparse.BooleanOptionalAction, default=None,
        help="its 200 answers become the room's crmData (off by default; the environment's "
        "endpoint: on, as in Rocket.Chat)",
    )  # fmt: skip

    shaping = fields.add_argument_group(
        "what it gets (jq programs over the webhook body; @FILE reads one)"
    )
    shaping.add_argument(
        "--filter",
        help="it gets a webhook only when this is true, e.g. "
        "'.department == \"sales\"' ('' to drop it)",
    )
    shaping.add_argument(
        "--template",
        help="makes the request: {body: ..., method?, path?, "
        "headers?} ('' to drop it: the Rocket.Chat body as is)",
    )
    alerting = fields.add_argument_group("an operators' alert endpoint (never sent webhooks)")
    alerting.add_argument(
        "--alerts", choices=["all", "workspace", "none"],
        help="it gets alerts about endpoints: of every workspace (all), of its own (workspace); "
        "none: a CRM again",
    )  # fmt: skip
    alerting.add_argument(
        "--alert-format", choices=["json", "slack"],
        help="json: the alert event as is; slack: {text} for Slack, Mattermost or Rocket.Chat "
        "incoming webhooks (sets --template)",
    )  # fmt: skip
    auth = fields.add_argument_group("how the receiver knows us")
    auth.add_argument(
        "--header",
        action="append",
        metavar="NAME=VALUE",
        help="a static header (repeat it; NAME= drops one)",
    )
    auth.add_argument("--basic-auth", metavar="USER:PASSWORD", help="HTTP basic auth ('' drops it)")
    auth.add_argument(
        "--oauth2-token-url", help="OAuth2 client credentials: the token endpoint ('' drops OAuth2)"
    )
    auth.add_argument("--oauth2-client-id")
    auth.add_argument("--oauth2-client-secret")
    auth.add_argument("--oauth2-scope")
    auth.add_argument("--oauth2-audience")
    auth.add_argument("--client-cert", metavar="PEM_FILE", help="mTLS: our certificate")
    auth.add_argument("--client-key", metavar="PEM_FILE", help="mTLS: its key")
    auth.add_argument(
        "--ca-bundle",
        metavar="PEM_FILE",
        help="the CAs the receiver's certificate is checked against (default: the system's)",
    )

    add = commands.add_parser("add", parents=[named, fields], help="add an endpoint")
    add.add_argument("--secret", help="signing secret (whsec_...); --generate-secret makes one")
    add.add_argument("--generate-secret", action="store_true", help="make a signing secret")
    add.add_argument("--disabled", action="store_true", help="add it disabled")
    add.set_defaults(command=_endpoints_add)
    listing = commands.add_parser("list", help="every endpoint, secrets masked")
    listing.add_argument("--workspace", help="only this workspace's")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(command=_endpoints_list)
    commands.add_parser("show", parents=[named], help="one endpoint, secrets masked").set_defaults(
        command=_endpoints_show
    )
    update = commands.add_parser("update", parents=[named, fields], help="change an endpoint")
    update.set_defaults(command=_endpoints_update)
    for action, verb in (("disable", "no new webhooks for it"), ("enable", "webhooks again"),
                         ("remove", "delete it (its pending jobs are dead-lettered)")):  # fmt: skip
        command = commands.add_parser(action, parents=[named], help=f"{action}: {verb}")
        command.set_defaults(command=_endpoints_change, action=action)
    tester = commands.add_parser(
        "test", help="send a sample webhook through its filter, template and authentication",
        description="Renders a sample webhook (the seed conversation, in the endpoint's era) "
        "through the endpoint's filter, template and authentication, sends it as a worker "
        "would, and prints the request as sent (secrets masked) and the answer. Exit 0 when "
        "the receiver answered 2xx (or --dry-run rendered it), 1 otherwise.",
    )  # fmt: skip
    tester.add_argument("endpoint", metavar="WORKSPACE/ENDPOINT", help="or ENDPOINT in 'default'")
    tester.add_argument(
        "--type",
        default="close",
        choices=list(SAMPLE_TYPES),
        help="which sample (default: close)",
    )
    tester.add_argument("--dry-run", action="store_true", help="render only: nothing is sent")
    tester.set_defaults(command=_endpoints_test)
    rotation = commands.add_parser(
        "rotate-secret", parents=[named],
        help="a new signing secret; the old one keeps signing through --grace",
        description="Standard Webhooks rotation: during the grace period each webhook carries "
        "two signatures (new and old) in webhook-signature, so receivers can switch at will.",
    )  # fmt: skip
    rotation.add_argument("--secret", help="the new secret (default: a generated whsec_...)")
    rotation.add_argument("--grace", default="24h", help="how long the old one still signs")
    rotation.set_defaults(command=_endpoints_rotate)


def _triggers(text: str | None) -> tuple[str, ...] | None:
    from streams.core.endpoints import TRIGGERS

    if text is None:
        return None
    if text.strip() == "all":
        return TRIGGERS
    return tuple(name.strip() for name in text.split(",") if name.strip())


def _endpoint_fields(args: argparse.Namespace, record: Any = None) -> dict[str, Any]:
    """The fields the options set (None: left as is), over `record` for those that
    change part of a field (headers, OAuth2, TLS)."""
    return {
        "url": args.url, "token": args.token, "triggers": _triggers(args.triggers),
        "navigation_history": args.navigation_history, "compat": args.compat,
        "retry_attempts": args.retry_attempts, "retry_delay_s": args.retry_delay_s,
        "timeout_ms": args.timeout_ms, "concurrency": args.concurrency,
        "crm_answers": args.crm_answers,
        "filter": _text_or_file(args.filter), "template": _text_or_file(args.template),
        "basic_auth": args.basic_auth, **_auth_fields(args, record), **_alert_fields(args),
    }  # fmt: skip


def _alert_fields(args: argparse.Namespace) -> dict[str, Any]:
    from streams.core.alerts import SLACK_TEMPLATE

    found: dict[str, Any] = {}
    if args.alerts is not None:
        found["alerts"] = "" if args.alerts == "none" else args.alerts
    if args.alert_format is not None:
        if args.template is not None:
            raise UsageError("--alert-format sets the template: give one or the other")
        found["template"] = SLACK_TEMPLATE if args.alert_format == "slack" else ""
    return found


def _text_or_file(value: str | None) -> str | None:
    """An option's text, or a file's when it starts with @."""
    if value is None or not value.startswith("@"):
        return value
    try:
        return Path(value[1:]).read_text()
    except OSError as exc:
        raise UsageError(f"cannot read {value[1:]}: {exc.strerror}") from None


def _auth_fields(args: argparse.Namespace, record: Any) -> dict[str, Any]:
    from topics.records import ClientTls, OAuth2Client

    found: dict[str, Any] = {}
    if args.header:
        headers = dict(record.headers) if record is not None else {}
        for given in args.header:
            name, sep, value = given.partition("=")
            if not sep or not name:
                raise UsageError(f"--header {given!r}: NAME=VALUE")
            if value:
                headers[name] = value
            else:
                headers.pop(name, None)
        found["headers"] = headers
    oauth = {"token_url": args.oauth2_token_url, "client_id": args.oauth2_client_id,
             "client_secret": args.oauth2_client_secret, "scope": args.oauth2_scope,
             "audience": args.oauth2_audience}  # fmt: skip
    if args.oauth2_token_url == "":
        found["oauth2"] = None
    elif any(v is not None for v in oauth.values()):
        before = msgspec_builtins(record.oauth2) if record is not None and record.oauth2 else {}
        merged = {**before, **{k: v for k, v in oauth.items() if v is not None}}
        missing = [k for k in ("token_url", "client_id", "client_secret") if not merged.get(k)]
        if missing:
            raise UsageError("OAuth2 needs --oauth2-" + ", --oauth2-".join(
                m.replace("_", "-") for m in missing))  # fmt: skip
        found["oauth2"] = OAuth2Client(**merged)
    files = {"certificate": args.client_cert, "key": args.client_key, "ca": args.ca_bundle}
    if any(v is not None for v in files.values()):
        before = msgspec_builtins(record.tls) if record is not None and record.tls else {}
        read = {k: _text_or_file("@" + v) if v else "" for k, v in files.items() if v is not None}
        found["tls"] = ClientTls(**{**before, **read})
    return found


def msgspec_builtins(value: Any) -> dict[str, Any]:
    import msgspec

    return msgspec.to_builtins(value)  # type: ignore[no-any-return]


def _print_endpoint(args: argparse.Namespace, record: Any, verb: str) -> None:
    from streams.ops.endpoint_admin import print_json, shown

    if args.json:
        print_json(shown(record))
    else:
        print(f"{verb} {record.workspace}/{record.id} ({record.url})")


def _endpoints_add(args: argparse.Namespace, settings: Settings) -> int:
    from streams.core.endpoints import EndpointError, validate
    from streams.ops.endpoint_admin import (
        EndpointsTopic,
        check_expressions,
        new_secret,
        now_iso,
    )
    from topics.records import EndpointRecord, SigningSecret, endpoint_key

    if not args.url:
        raise UsageError("endpoints add needs --url")
    topic = EndpointsTopic(settings)
    secret = args.secret or (new_secret() if args.generate_secret else None)
    now = now_iso()
    fields = {k: v for k, v in _endpoint_fields(args).items() if v is not None}
    record = EndpointRecord(
        workspace=args.workspace, id=args.id, created_at=now, updated_at=now,
        secrets=(SigningSecret(secret, now),) if secret else (), enabled=not args.disabled,
        **fields,
    )  # fmt: skip
    try:
        record = validate(record)  # before any Kafka: bad input is told at once
        check_expressions(settings, record)
        if endpoint_key(args.workspace, args.id) in topic.records():
            raise EndpointError(f"endpoint {args.workspace}/{args.id} exists: use update")
        record = topic.put(record)
    except EndpointError as exc:
        raise UsageError(str(exc)) from None
    _print_endpoint(args, record, "added")
    if args.generate_secret and not args.secret:
        print(f"signing secret (shown once): {secret}")
    return EXIT_OK


def _endpoints_list(args: argparse.Namespace, settings: Settings) -> int:
    from streams.ops.endpoint_admin import EndpointsTopic, listing, print_json, table

    rows = listing(settings, EndpointsTopic(settings), args.workspace)
    if args.json:
        for row in rows:
            print_json(row)
    elif rows:
        print(table(rows))
    else:
        print("no endpoints", file=sys.stderr)
    return EXIT_OK


def _endpoints_show(args: argparse.Namespace, settings: Settings) -> int:
    from streams.ops.endpoint_admin import EndpointsTopic, listing
    from topics import codec

    rows = [
        row
        for row in listing(settings, EndpointsTopic(settings), args.workspace)
        if row["id"] == args.id
    ]
    if not rows:
        raise UsageError(f"no endpoint {args.workspace}/{args.id}")
    print(codec.dumps_pretty(rows[0]))
    return EXIT_OK


def _endpoints_update(args: argparse.Namespace, settings: Settings) -> int:
    from streams.core.endpoints import EndpointError
    from streams.ops.endpoint_admin import (
        EndpointsTopic,
        changed,
        check_expressions,
        validate_fields,
    )

    topic = EndpointsTopic(settings)
    fields = _endpoint_fields(args)
    try:
        validate_fields(args.workspace, args.id, fields)  # before any Kafka
        current = topic.find(args.workspace, args.id)
        record = changed(current, **_endpoint_fields(args, current))
        check_expressions(settings, record)
        record = topic.put(record)
    except EndpointError as exc:
        raise UsageError(str(exc)) from None
    _print_endpoint(args, record, "updated")
    return EXIT_OK


def _endpoints_change(args: argparse.Namespace, settings: Settings) -> int:
    from streams.core.endpoints import EndpointError
    from streams.ops.endpoint_admin import EndpointsTopic, changed

    topic = EndpointsTopic(settings)
    try:
        record = topic.find(args.workspace, args.id)
        if args.action == "remove":
            topic.remove(record)
        else:
            record = topic.put(changed(record, enabled=args.action == "enable"))
    except EndpointError as exc:
        raise UsageError(str(exc)) from None
    _print_endpoint(args, record, {"remove": "removed", "enable": "enabled"}.get(
        args.action, "disabled"))  # fmt: skip
    return EXIT_OK


def _endpoints_test(args: argparse.Namespace, settings: Settings) -> int:
    from streams.core.endpoints import EndpointError
    from streams.ops.endpoint_admin import EndpointsTopic
    from streams.ops.endpoint_test import test_send

    try:
        record = EndpointsTopic(settings).named(args.endpoint)
    except EndpointError as exc:
        raise UsageError(str(exc)) from None
    sent = asyncio.run(test_send(settings, record, args.type, args.dry_run))
    print("\n".join(sent.lines))
    return EXIT_OK if sent.ok else EXIT_FAILURE


def _endpoints_rotate(args: argparse.Namespace, settings: Settings) -> int:
    from streams.core.endpoints import EndpointError
    from streams.ops.dead_letters import FilterError, parse_time
    from streams.ops.endpoint_admin import EndpointsTopic, rotated

    try:
        grace_s = -parse_time(args.grace, 0.0, "--grace")
    except FilterError as exc:
        raise UsageError(f"{exc}") from None
    if grace_s < 0:
        raise UsageError("--grace: give a duration such as 24h or 30m")
    topic = EndpointsTopic(settings)
    try:
        record, secret = rotated(topic.find(args.workspace, args.id), args.secret, grace_s)
        record = topic.put(record)
    except EndpointError as exc:
        raise UsageError(str(exc)) from None
    _print_endpoint(args, record, "rotated the signing secret of")
    if not args.secret:
        print(f"new signing secret (shown once): {secret}")
    return EXIT_OK


def _kafka_up(args: argparse.Namespace, settings: Settings) -> int:
    from streams.dev.local_kafka import LocalKafka

    broker = LocalKafka.configured(**({"kafka_secured": True} if args.secured else {}))
    print(broker.up(timeout_s=args.timeout))
    return EXIT_OK


def _kafka_down(args: argparse.Namespace, settings: Settings) -> int:
    from streams.dev.local_kafka import LocalKafka

    print(LocalKafka.configured().down())
    return EXIT_OK


def _kafka_status(args: argparse.Namespace, settings: Settings) -> int:
    from streams.dev.local_kafka import LocalKafka

    running, line = LocalKafka.configured().status()
    print(line)
    return EXIT_OK if running else EXIT_FAILURE


def _add_roles(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--role", dest="roles", action="append", choices=["all", "sessions", "delivery"],
        help="the worker roles deployed, whose tables' changelogs are wanted (repeatable; "
        "default: all)",
    )  # fmt: skip


def _topics_apply(args: argparse.Namespace, settings: Settings) -> int:
    from streams.ops.topic_admin import apply_catalogue, changelogs
    from topics.catalogue import load_catalogue

    catalogue = load_catalogue(settings.partitions, settings.replication_factor)
    extra = changelogs(settings, catalogue, args.roles or ["all"])
    report = apply_catalogue(KafkaConfig.of(settings), catalogue, settings.topic_prefix,
                             extra=extra)  # fmt: skip
    for line in report.lines():
        print(line)
    return EXIT_OK


def _acls(args: argparse.Namespace, settings: Settings) -> int:
    from streams.ops.acl_admin import grant, revoke
    from topics.roles import load_roles

    roles = load_roles()
    if args.role not in roles:
        raise UsageError(f"--role {args.role!r}: one of {', '.join(roles)}")
    acls = roles[args.role].acls(settings.topic_prefix, settings.app_id)
    if args.action == "show":
        print(f"{args.role}: {roles[args.role].runs}")
        for acl in acls:
            print(f"  {acl.line()}")
        return EXIT_OK
    config = KafkaConfig.of(settings)
    if args.action == "apply":
        print(f"granted {grant(config, args.principal, acls)} ACLs to {args.principal}")
    else:
        print(f"revoked {revoke(config, args.principal, acls)} ACLs from {args.principal}")
    return EXIT_OK


def _topics_list(args: argparse.Namespace, settings: Settings) -> int:
    from topics.catalogue import load_catalogue

    catalogue = load_catalogue(settings.partitions, settings.replication_factor)
    for spec in catalogue.specs:
        print(
            f"{spec.name(settings.topic_prefix):40} partitions={spec.partitions:<3} "
            f"replication={spec.replication} cleanup={spec.cleanup:<8} "
            f"retention.ms={spec.retention_ms}"
        )
    return EXIT_OK


def _topics_render(args: argparse.Namespace, settings: Settings) -> int:
    from streams.ops.manifests import strimzi_topics, strimzi_users
    from streams.ops.topic_admin import WantedTopic, changelogs
    from topics.catalogue import load_catalogue
    from topics.roles import load_roles

    if args.users:
        roles = list(load_roles().values())
        print(strimzi_users(roles, settings.topic_prefix, settings.app_id, args.authentication,
                            args.cluster, args.namespace), end="")  # fmt: skip
        return EXIT_OK
    catalogue = load_catalogue(settings.partitions, settings.replication_factor)
    wanted = [WantedTopic.of(spec, settings.topic_prefix) for spec in catalogue.specs]
    wanted += changelogs(settings, catalogue, args.roles or ["all"])
    print(strimzi_topics(wanted, args.cluster, args.namespace), end="")
    return EXIT_OK


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    import uuid

    from streams.dev import demo

    room = args.room or f"demo-{uuid.uuid4().hex[:12]}"
    records = demo.seed_conversation(room)
    if args.workspace:
        for record in records:
            record.value["workspace"] = args.workspace
    count = demo.produce(KafkaConfig.of(settings), settings.topic_prefix, records)
    print(f"published {count} events for room {room} to {settings.topic_prefix}rooms/messages")
    return EXIT_OK


def _dead_letter_topic(settings: Settings) -> Any:
    from streams.ops.dead_letters import DeadLetterTopic

    return DeadLetterTopic.of(settings)


def _selected(
    args: argparse.Namespace, settings: Settings, ids: list[str]
) -> tuple[Any, list[Any]]:
    from streams.ops.dead_letters import FilterError, build_filters

    try:
        filters = build_filters(
            since=args.since, until=args.until, types=args.type, room=args.room, url=args.url,
            status=args.status, ids=ids, endpoint=args.endpoint, workspace=args.workspace,
        )  # fmt: skip
    except FilterError as exc:
        raise UsageError(str(exc)) from None
    topic = _dead_letter_topic(settings)
    include_purged = getattr(args, "all", False)
    entries = [
        e for e in topic.entries() if filters.matches(e) and (include_purged or not e.purged)
    ]
    return topic, entries


def _confirm(question: str, args: argparse.Namespace, selected_by_ids: bool) -> bool:
    if args.yes or selected_by_ids:
        return True
    if not sys.stdin.isatty():
        print(f"{question} Not confirmed: pass --yes to run without a terminal.", file=sys.stderr)
        return False
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def _dlq_list(args: argparse.Namespace, settings: Settings) -> int:
    from streams.ops.dead_letters import table
    from topics import codec

    _, entries = _selected(args, settings, [])
    if args.json:
        for entry in entries:
            print(codec.dumps(entry.summary()).decode())
    elif entries:
        print(table(entries))
    else:
        print("no dead letters match", file=sys.stderr)
    return EXIT_OK


def _dlq_show(args: argparse.Namespace, settings: Settings) -> int:
    from topics import codec

    entries = [
        e
        for e in _dead_letter_topic(settings).entries()
        if args.id in (e.letter.job.delivery_id, e.entry_id)
    ]
    if not entries:
        print(f"omnihooks: no dead letter with id {args.id}", file=sys.stderr)
        return EXIT_FAILURE
    for entry in entries:
        print(
            codec.dumps_pretty(
                {**entry.summary(), "purged": entry.purged, "dead_letter": entry.letter}
            )
        )
    return EXIT_OK


def _dlq_replay(args: argparse.Namespace, settings: Settings) -> int:
    from streams.ops.dead_letters import progress

    topic, entries = _selected(args, settings, args.ids)
    if not args.force:
        skipped = [e for e in entries if e.replayed]
        entries = [e for e in entries if not e.replayed]
        if skipped:
            print(f"{len(skipped)} already replayed (use --force to send again)", file=sys.stderr)
    if not entries:
        print("no dead letters to replay", file=sys.stderr)
        return EXIT_OK
    target = args.target_url or "their own URLs"
    if args.dry_run:
        for entry in entries:
            print(f"would replay {entry.letter.job.delivery_id} ({entry.letter.job.type}) to "
                  f"{args.target_url or entry.letter.job.url}")  # fmt: skip
        return EXIT_OK
    if not _confirm(f"Replay {len(entries)} dead letters to {target}?", args, bool(args.ids)):
        return EXIT_FAILURE
    for done, entry in enumerate(entries, 1):
        topic.replay(entry, args.target_url)
        progress(done, len(entries))
    topic.flush()
    print(f"replayed {len(entries)} dead letters to {target}")
    return EXIT_OK


def _dlq_purge(args: argparse.Namespace, settings: Settings) -> int:
    topic, entries = _selected(args, settings, args.ids)
    if not entries:
        print("no dead letters match", file=sys.stderr)
        return EXIT_OK
    if args.dry_run:
        for entry in entries:
            print(f"would purge {entry.entry_id}")
        return EXIT_OK
    if not _confirm(f"Purge {len(entries)} dead letters?", args, False):
        return EXIT_FAILURE
    for entry in entries:
        topic.purge(entry)
    topic.flush()
    print(f"purged {len(entries)} dead letters")
    return EXIT_OK


def _endpoints_status(args: argparse.Namespace, settings: Settings) -> int:
    import httpx

    workers = args.worker or [f"http://127.0.0.1:{settings.web_port}"]
    failed = False
    print(f"{'worker':28} {'endpoint':44} {'state':9} {'waiting':>7} {'failures':>8} reopen in")
    for worker in workers:
        if not worker.startswith(("http://", "https://")):
            raise UsageError(f"--worker {worker!r}: give an http:// or https:// address")
        try:
            answer = httpx.get(worker.rstrip("/") + "/endpoints", timeout=5)
            answer.raise_for_status()
        except httpx.HTTPError as exc:
            print(f"{worker:28} unreachable: {exc}", file=sys.stderr)
            failed = True
            continue
        for e in answer.json()["endpoints"]:
            reopen = "" if e["reopen_in_s"] is None else f"{e['reopen_in_s']} s"
            print(f"{worker:28} {e['endpoint']:44} {e['state']:9} {e['waiting']:>7} "
                  f"{e['failures']:>8} {reopen}")  # fmt: skip
    return EXIT_FAILURE if failed else EXIT_OK


def _endpoints_control(args: argparse.Namespace, settings: Settings) -> int:
    from streams.ops.endpoint_admin import write_control

    if not args.url.startswith(("http://", "https://")):
        raise UsageError(f"{args.url!r} is not an http:// or https:// URL")
    try:
        topic = write_control(settings, args.url, args.paused, args.reason)
    except RuntimeError as exc:
        print(f"omnihooks: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"{'paused' if args.paused else 'resumed'} {args.url} ({topic})")
    return EXIT_OK


def _erase(args: argparse.Namespace, settings: Settings) -> int:
    from streams.ops.erasure import erase_visitor, print_report

    identifier = args.visitor.strip()
    if not identifier:
        raise UsageError("--visitor: a visitor's _id, token or email address")
    if args.timeout <= 0:
        raise UsageError("--timeout: a number of seconds above 0")
    report = erase_visitor(settings, identifier, args.timeout)
    print_report(report, repr(identifier), print)
    return EXIT_OK if report.complete else EXIT_FAILURE


def _ingest(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    from streams.ops.ingest import serve

    if not settings.ingest_token.get_secret_value():
        raise UsageError("set OMNIHOOKS_INGEST_TOKEN (Rocket.Chat's Livechat_secret_token)")
    import contextlib

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: a clean stop
        asyncio.run(serve(settings, args.host, args.port))
    return EXIT_OK


def _console(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio
    import contextlib

    from streams.ops.console.access import Access, TokenError, parse_tokens
    from streams.ops.console.reads import KafkaReads
    from streams.ops.console.server import Console, is_loopback, serve

    try:
        tokens = parse_tokens(settings.console_token.get_secret_value())
    except TokenError as exc:
        raise UsageError(str(exc)) from None
    workers = args.worker or [w.strip() for w in settings.console_workers.split(",") if w.strip()]
    workers = workers or [f"http://127.0.0.1:{settings.web_port}"]
    for worker in workers:
        if not worker.startswith(("http://", "https://", "dns+http://")):
            raise UsageError(f"worker {worker!r}: give an http://, https:// or dns+http:// address")
    private = not is_loopback(args.host)
    if private and not tokens:
        raise UsageError(f"--host {args.host} is reachable from other machines: set "
                         "OMNIHOOKS_CONSOLE_TOKEN, which every page then asks for")  # fmt: skip
    if not tokens:
        logging.getLogger("omnihooks.console").warning(
            "OMNIHOOKS_CONSOLE_TOKEN is not set: the console is read-only"
        )
    console = Console(
        KafkaReads(settings), Access(tokens), workers, window_s=settings.console_window_s,
        scrape_s=settings.console_scrape_s, private_reads=private,
    )  # fmt: skip
    print(f"console on http://{args.host}:{args.port}/", flush=True)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: a clean stop
        asyncio.run(serve(console, args.host, args.port))
    return EXIT_OK


def _receive(args: argparse.Namespace, settings: Settings) -> int:
    from streams.dev.receiver import run_receiver

    print(f"receiving webhooks on http://{args.host}:{args.port}/", flush=True)
    run_receiver(args.host, args.port, args.quiet)
    return EXIT_OK


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from streams.worker import run_worker

    return run_worker(settings, role=args.role, loglevel=args.loglevel)


if __name__ == "__main__":
    sys.exit(main())

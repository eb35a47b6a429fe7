"""`omnihooks`: the one command line (local broker, topics, worker, producer, dead letters).

Exit status: 0 on success, 2 on a usage error (argparse's own, or a bad setting/filter value
with a message on stderr), 1 on any other failure.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

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
    up.set_defaults(command=_kafka_up)
    kafka_commands.add_parser("down", help="stop it cleanly").set_defaults(command=_kafka_down)
    kafka_commands.add_parser("status", help="is it running and answering").set_defaults(
        command=_kafka_status
    )

    topics = commands.add_parser("topics", help="the topic catalogue")
    topic_commands = topics.add_subparsers(required=True, metavar="ACTION")
    topic_commands.add_parser(
        "apply", help="create missing topics, report drift (never deletes)"
    ).set_defaults(command=_topics_apply)
    topic_commands.add_parser("list", help="print the catalogue").set_defaults(command=_topics_list)

    demo = commands.add_parser(
        "demo", help="publish a sample conversation (the seed's chat) to the input topics"
    )
    demo.add_argument("--room", default=None, help="room _id (default: a fresh one)")
    demo.set_defaults(command=_demo)

    worker = commands.add_parser("worker", help="run the Faust worker")
    worker.add_argument("--role", choices=["all", "sessions", "delivery"], default="all")
    worker.set_defaults(command=_worker)
    return parser


def _kafka_up(args: argparse.Namespace, settings: Settings) -> int:
    from streams.local_kafka import LocalKafka

    print(LocalKafka.from_settings(settings).up(timeout_s=args.timeout))
    return EXIT_OK


def _kafka_down(args: argparse.Namespace, settings: Settings) -> int:
    from streams.local_kafka import LocalKafka

    print(LocalKafka.from_settings(settings).down())
    return EXIT_OK


def _kafka_status(args: argparse.Namespace, settings: Settings) -> int:
    from streams.local_kafka import LocalKafka

    running, line = LocalKafka.from_settings(settings).status()
    print(line)
    return EXIT_OK if running else EXIT_FAILURE


def _topics_apply(args: argparse.Namespace, settings: Settings) -> int:
    from topics.admin import apply_catalogue
    from topics.catalogue import load_catalogue

    catalogue = load_catalogue(settings.partitions, settings.replication_factor)
    report = apply_catalogue(settings.kafka_bootstrap_servers, catalogue, settings.topic_prefix)
    for line in report.lines():
        print(line)
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


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    import uuid

    from streams import demo

    room = args.room or f"demo-{uuid.uuid4().hex[:12]}"
    records = demo.seed_conversation(room)
    count = demo.produce(settings.kafka_bootstrap_servers, settings.topic_prefix, records)
    print(f"published {count} events for room {room} to {settings.topic_prefix}rooms/messages")
    return EXIT_OK


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from streams.worker import run_worker

    return run_worker(settings, role=args.role, loglevel=args.loglevel)


if __name__ == "__main__":
    sys.exit(main())

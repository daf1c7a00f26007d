"""The ``tidings`` command line: one entry point, one subcommand per job."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from producer.config import Settings, load_settings

Handler = Callable[[argparse.Namespace, Settings], int]


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 1."""


def _read_json_arg(value: str | None, name: str) -> Any:
    """Parse a JSON argument given inline or as ``@file``."""
    if value is None:
        return None
    text = value
    if value.startswith("@"):
        try:
            text = Path(value[1:]).read_text()
        except OSError as exc:
            raise CliError(f"{name}: cannot read {value[1:]}: {exc.strerror}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{name}: not valid JSON: {exc}") from exc


# broker ------------------------------------------------------------------------------------
def _broker(args: argparse.Namespace) -> Any:
    from admin.broker import LocalBroker, default_data_dir

    return LocalBroker(port=args.port, data_dir=Path(args.data_dir or default_data_dir()))


def cmd_broker_start(args: argparse.Namespace, _settings: Settings) -> int:
    """Start the embedded broker (fetching Kafka on first use); already running is fine."""
    broker = _broker(args)
    started = broker.start()
    if not started:
        print(f"# already running (pid {broker.pid()})", file=sys.stderr)
    print(f"bootstrap.servers={broker.bootstrap_servers}")
    return 0


def cmd_broker_status(args: argparse.Namespace, _settings: Settings) -> int:
    """Exit 0 and print the address when the broker is running, else exit 3."""
    broker = _broker(args)
    if broker.is_running():
        print(
            f"running pid={broker.pid()} bootstrap.servers={broker.bootstrap_servers} "
            f"data_dir={broker.data_dir}"
        )
        return 0
    print(f"stopped data_dir={broker.data_dir}")
    return 3


def cmd_broker_stop(args: argparse.Namespace, _settings: Settings) -> int:
    """Stop the embedded broker; stopping a stopped broker is fine."""
    broker = _broker(args)
    print("stopped" if broker.stop() else "not running")
    return 0


# topics and events -------------------------------------------------------------------------
def cmd_topics_ensure(_args: argparse.Namespace, settings: Settings) -> int:
    """Create Tidings' topics where absent."""
    from admin.topics import ensure_all, required_topics

    created = set(ensure_all(settings))
    for spec in required_topics(settings):
        state = "created" if spec.name in created else "exists"
        replicas = "default" if spec.replication_factor < 0 else spec.replication_factor
        print(f"{spec.name}\t{spec.partitions} partitions\t{replicas} replicas\t{state}")
    return 0


def cmd_emit(args: argparse.Namespace, settings: Settings) -> int:
    """Emit one lifecycle event through the producer library and print its id."""
    from producer.producer import EventProducer
    from schemas.errors import ContractError
    from schemas.models import make_event

    obj = _read_json_arg(args.data, "--data")
    previous = _read_json_arg(args.previous, "--previous")
    context = _read_json_arg(args.context, "--context")
    try:
        event = make_event(args.event_type, obj, previous, context, tenant=settings.tenant)
        with EventProducer(settings) as producer:
            event_id = producer.emit(event, wait=True, timeout=args.timeout)
    except ContractError as exc:
        raise CliError(str(exc)) from exc
    print(event_id)
    return 0


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    """The whole system on this machine (``make run``)."""
    import asyncio

    from admin.local import LocalPorts, run_local

    ports = LocalPorts(broker=args.broker_port, admin=args.admin_port, receiver=args.receiver_port)
    data_dir = Path(args.data_dir) if args.data_dir else None
    return asyncio.run(run_local(settings, ports, data_dir))


def cmd_dispatcher_run(args: argparse.Namespace, settings: Settings) -> int:
    """Run the dispatcher until SIGTERM/SIGINT."""

    import uvloop

    from dispatcher.memory import MemoryKeeper, freeze_startup_objects
    from dispatcher.service import Dispatcher
    from producer.logs import configure_logging

    configure_logging(args.log_level or settings.log_level)
    memory = MemoryKeeper()  # before any Kafka client starts its threads
    memory.start()
    try:
        dispatcher = Dispatcher(settings, shutdown_timeout=args.shutdown_timeout)
        freeze_startup_objects()
        return uvloop.run(dispatcher.run_forever())
    finally:
        memory.stop()


def cmd_secrets_generate_key(_args: argparse.Namespace, _settings: Settings) -> int:
    """Print a new key for TIDINGS_SECRETS_KEY."""
    from dispatcher.secret_box import generate_key

    print(generate_key())
    return 0


def cmd_secrets_rotate(_args: argparse.Namespace, settings: Settings) -> int:
    """Rewrite every stream so its secrets are encrypted with the current key, never
    undoing a change made meanwhile (see admin/secrets_rotation.py)."""
    import asyncio

    from admin.secrets_rotation import rotate_secrets

    report = asyncio.run(rotate_secrets(settings))
    print(f"re-encrypted {len(report.rotated)} streams with the current key", end="")
    print(f" ({report.conflicts} changed meanwhile, retried)" if report.conflicts else "")
    if report.gave_up:
        print(
            f"not re-encrypted, changing continuously: {', '.join(report.gave_up)}; "
            "run the rotation again",
            file=sys.stderr,
        )
        return 1
    return 0


# parser ------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="tidings", description=__doc__)
    parser.add_argument("--config", help="TOML settings file (or TIDINGS_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    broker = sub.add_parser("broker", help="the embedded development Kafka broker")
    broker_sub = broker.add_subparsers(dest="action", required=True)
    for name, handler, text in (
        ("start", cmd_broker_start, "start it in the background (fetching Kafka first)"),
        ("status", cmd_broker_status, "say whether it runs"),
        ("stop", cmd_broker_stop, "stop it"),
    ):
        p = broker_sub.add_parser(name, help=text)
        p.add_argument("--port", type=int, default=9092)
        p.add_argument("--data-dir", help="kept between runs (default ~/.cache/tidings/...)")
        p.set_defaults(handler=handler)

    topics = sub.add_parser("topics", help="Kafka topics Tidings uses")
    topics_sub = topics.add_subparsers(dest="action", required=True)
    topics_sub.add_parser("ensure", help="create missing topics").set_defaults(
        handler=cmd_topics_ensure
    )

    emit = sub.add_parser("emit", help="emit one lifecycle event and print its id")
    emit.add_argument("event_type", help="e.g. user.created")
    emit.add_argument("--data", required=True, help="data.object as JSON or @file")
    emit.add_argument("--previous", help="data.previous_object as JSON or @file")
    emit.add_argument("--context", help="data.context as JSON or @file")
    emit.add_argument("--timeout", type=float, default=30.0)
    emit.set_defaults(handler=cmd_emit)

    dispatcher = sub.add_parser("dispatcher", help="the delivery service")
    dispatcher_sub = dispatcher.add_subparsers(dest="action", required=True)
    run = dispatcher_sub.add_parser("run", help="deliver until SIGTERM")
    run.add_argument("--log-level", help="overrides TIDINGS_LOG_LEVEL")
    run.add_argument(
        "--shutdown-timeout",
        type=float,
        default=30.0,
        help="seconds SIGTERM waits for in-flight deliveries",
    )
    run.set_defaults(handler=cmd_dispatcher_run)

    secrets_cmd = sub.add_parser("secrets", help="the key that encrypts webhook secrets")
    secrets_sub = secrets_cmd.add_subparsers(dest="action", required=True)
    secrets_sub.add_parser("generate-key", help="print a new key").set_defaults(
        handler=cmd_secrets_generate_key
    )
    secrets_sub.add_parser(
        "rotate", help="re-encrypt every stream with TIDINGS_SECRETS_KEY"
    ).set_defaults(handler=cmd_secrets_rotate)

    from admin import api, apply, cli_outbox, cli_streams, dlq, listen, status

    api.register_cli(sub)
    dlq.register_cli(sub)
    status.register_cli(sub)
    cli_streams.register_cli(sub)
    apply.register_cli(sub)
    cli_outbox.register_cli(sub)
    listen.register_cli(sub)

    run_all = sub.add_parser("run", help="the whole system on this machine (make run)")
    run_all.add_argument("--broker-port", type=int, default=9092)
    run_all.add_argument("--admin-port", type=int, default=8080)
    run_all.add_argument("--receiver-port", type=int, default=8099)
    run_all.add_argument("--data-dir", help="broker data and process logs")
    run_all.set_defaults(handler=cmd_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tidings`` console script."""
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
        handler: Handler = args.handler
        return handler(args, settings)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from pydantic import ValidationError

        if isinstance(exc, ValidationError | FileNotFoundError):
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())

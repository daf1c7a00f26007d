"""``tidings outbox init|relay`` and ``tidings capture``: the PostgreSQL sources of events."""

from __future__ import annotations

import argparse
import signal
import threading

from producer.config import Settings


def _stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT: the long-running commands finish their batch."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def cmd_outbox_init(args: argparse.Namespace, _settings: Settings) -> int:
    """Create the outbox table and its triggers (idempotent), or print the SQL."""
    from producer.outbox import OUTBOX_DDL, install

    if args.print_sql:
        print(OUTBOX_DDL.strip())
        return 0
    if not args.dsn:
        from admin.cli import CliError

        raise CliError("--dsn is required (or --print-sql)")
    install(args.dsn)
    print("outbox ready")
    return 0


def cmd_outbox_relay(args: argparse.Namespace, settings: Settings) -> int:
    """Publish committed outbox rows to Kafka until SIGTERM."""
    from admin.cli import CliError
    from producer.logs import configure_logging
    from producer.outbox import OutboxError
    from producer.relay import run_relay

    configure_logging(args.log_level or settings.log_level)
    try:
        return run_relay(args.dsn, settings, _stop_on_signals(), batch_size=args.batch_size)
    except OutboxError as exc:
        raise CliError(str(exc)) from exc


def cmd_capture(args: argparse.Namespace, settings: Settings) -> int:
    """Emit user events for every change of a table until SIGTERM."""
    from admin.cli import CliError
    from producer.capture import CaptureSetupError, run_capture
    from producer.capture_mapping import MappingError, load_mapping
    from producer.logs import configure_logging

    configure_logging(args.log_level or settings.log_level)
    try:
        mapping = load_mapping(args.mapping, args.table)
        return run_capture(
            args.dsn,
            settings,
            mapping,
            _stop_on_signals(),
            slot=args.slot,
            batch_changes=args.batch_changes,
        )
    except (MappingError, CaptureSetupError) as exc:
        raise CliError(str(exc)) from exc


def register_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``outbox`` (and ``capture``) to the ``tidings`` command line."""
    outbox = subparsers.add_parser("outbox", help="the transactional outbox on PostgreSQL")
    outbox_sub = outbox.add_subparsers(dest="action", required=True)
    init = outbox_sub.add_parser("init", help="create the outbox table (idempotent)")
    init.add_argument("--dsn", help="postgresql://… of the service's database")
    init.add_argument("--print-sql", action="store_true", help="print the migration instead")
    init.set_defaults(handler=cmd_outbox_init)
    relay = outbox_sub.add_parser("relay", help="publish committed outbox rows until SIGTERM")
    relay.add_argument("--dsn", required=True, help="postgresql://… of the service's database")
    relay.add_argument("--batch-size", type=int, default=2000, help="rows per Kafka batch")
    relay.add_argument("--log-level", help="overrides TIDINGS_LOG_LEVEL")
    relay.set_defaults(handler=cmd_outbox_relay)

    capture = subparsers.add_parser(
        "capture", help="user events for every change of a table (logical decoding)"
    )
    capture.add_argument("--dsn", required=True, help="postgresql://… (a role with REPLICATION)")
    capture.add_argument("--table", help="the users table (overrides the mapping file's)")
    capture.add_argument("--mapping", required=True, help="YAML: subject column and fields")
    capture.add_argument("--slot", default="tidings_capture", help="replication slot name")
    capture.add_argument("--batch-changes", type=int, default=10_000, help="changes per batch")
    capture.add_argument("--log-level", help="overrides TIDINGS_LOG_LEVEL")
    capture.set_defaults(handler=cmd_capture)

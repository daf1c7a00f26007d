"""``tidings event-streams ...``: manage streams and their deliveries through the admin API.

The commands mirror Auth0's CLI: ``list|create|show|update|delete|trigger|stats``,
``deliveries list|show``, ``redeliver <stream> <event ids>`` and ``redeliver-many``. A
``<stream>`` is an id (``est_…``) or a stream's name when exactly one stream has it.
Output is a table by default and JSON with ``--json``; any error is one ``error:`` line
and exit status 1.

Times (``--from``, ``--to``, ``--start-position``) are ISO 8601, ``now``, or relative to
now like ``-2h``; ``--from -2h`` and ``--from=-2h`` both work.

Secrets are write-only: the API never returns a token, password, header value or signing
secret. As it replaces a destination as a whole, ``update --endpoint`` on a stream that has
an authorization must repeat it (``--bearer-token``, ``--basic``, ``--header``) or drop it
(``--no-auth``); ``--signing-secret`` replaces every signing secret.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Final
from urllib.parse import quote

from admin.cli import CliError, _read_json_arg
from admin.client import (
    STREAMS_PATH,
    AdminApiClient,
    AdminApiError,
    add_connection_options,
    client_from_args,
    reports_api_errors,
)
from admin.dlq import render_table
from admin.timeparse import parse_time
from producer.config import Settings
from schemas.ids import is_stream_id

#: argparse takes any argument starting with "-" for an option unless it looks like a
#: negative number; on parsers with time options, relative times like -2h count as such.
_RELATIVE_TIME: Final = re.compile(r"^-\d[\w.]*$")
#: The longest error text a table cell shows.
_ERROR_WIDTH: Final = 60


def accept_relative_times(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Let ``--from -2h`` parse as ``--from=-2h`` on ``parser`` (none of whose options
    looks like a negative number)."""
    parser._negative_number_matcher = _RELATIVE_TIME
    return parser


def iso_time(value: str | None, option: str) -> str | None:
    """A command-line time as RFC 3339 UTC; a bad one names its option."""
    if value is None:
        return None
    try:
        return parse_time(value).isoformat().replace("+00:00", "Z")
    except ValueError as exc:
        raise CliError(f"{option}: {exc}") from None


def print_json(value: Any) -> None:
    """Pretty JSON on stdout."""
    print(json.dumps(value, indent=2))


def confirm(question: str) -> bool:
    """Ask a yes/no question on the terminal; no answer (end of input) is no."""
    try:
        answer = input(f"{question} [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in {"y", "yes"}


def _split(values: Iterable[str] | None) -> list[str]:
    """Repeatable options that also take comma-separated lists."""
    return [part.strip() for value in values or () for part in value.split(",") if part.strip()]


def _target(args: argparse.Namespace) -> tuple[AdminApiClient, str]:
    """The client, and the id of the stream ``<stream>`` names (an id needs no lookup)."""
    client = client_from_args(args)
    ref: str = args.stream
    return client, ref if is_stream_id(ref) else str(client.resolve(ref)["id"])


def _as_json(args: argparse.Namespace, value: Any) -> bool:
    """With ``--json``, print ``value`` and say so."""
    if args.json:
        print_json(value)
    return bool(args.json)


def _base(stream_id: str) -> str:
    return f"{STREAMS_PATH}/{stream_id}"


def _when(value: str | None) -> str:
    """An API time, to the second."""
    if not value:
        return "-"
    return datetime.fromisoformat(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def _clip(text: str | None) -> str:
    if not text:
        return "-"
    return text if len(text) <= _ERROR_WIDTH else text[: _ERROR_WIDTH - 1] + "…"


# stream bodies -----------------------------------------------------------------------------
def _pair(value: str, option: str, shape: str) -> tuple[str, str]:
    left, sep, right = value.partition(":")
    if not sep or not left or not right:
        raise CliError(f"{option}: expected {shape}")
    return left, right


_KEEP: Final = object()


def _authorization(args: argparse.Namespace) -> object:
    """The webhook authorization the options give, None for ``--no-auth``, else _KEEP."""
    given = [o for o in ("bearer_token", "basic", "header", "no_auth") if getattr(args, o, None)]
    if len(given) > 1:
        raise CliError("give one of --bearer-token, --basic, --header, --no-auth")
    if args.bearer_token:
        return {"method": "bearer", "token": args.bearer_token}
    if args.basic:
        username, password = _pair(args.basic, "--basic", "USER:PASSWORD")
        return {"method": "basic", "username": username, "password": password}
    if args.header:
        key, value = _pair(args.header, "--header", "KEY:VALUE")
        return {"method": "custom_header", "header_key": key, "header_value": value}
    return None if args.no_auth else _KEEP


def _webhook_configuration(stream: dict[str, Any] | None) -> dict[str, Any]:
    destination = (stream or {}).get("destination") or {}
    if destination.get("type", "webhook") != "webhook":
        return {}
    configuration: dict[str, Any] = destination.get("configuration") or {}
    return configuration


def _destination(
    args: argparse.Namespace, given: dict[str, Any], current: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The webhook destination the options describe, completed from ``--from-json`` and
    then from the current stream (update); None when the options leave it alone."""
    authorization = _authorization(args)
    if args.endpoint is None and authorization is _KEEP:
        return None
    from_json = _webhook_configuration(given)
    from_current = _webhook_configuration(current)
    endpoint = (
        args.endpoint or from_json.get("webhook_endpoint") or from_current.get("webhook_endpoint")
    )
    if not endpoint:
        raise CliError("--endpoint: required with an authorization option")
    if authorization is _KEEP:
        authorization = from_json.get("webhook_authorization")
        if authorization is None and from_current.get("webhook_authorization"):
            raise CliError(
                "the destination is replaced as a whole and its secret cannot be read back: "
                "repeat --bearer-token, --basic or --header, or give --no-auth"
            )
    configuration = {"webhook_endpoint": endpoint, "webhook_authorization": authorization}
    return {"type": "webhook", "configuration": configuration}


def stream_body(args: argparse.Namespace, current: dict[str, Any] | None = None) -> dict[str, Any]:
    """The create or update body: ``--from-json`` with the options on top."""
    given = _read_json_arg(args.from_json, "--from-json")
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise CliError("--from-json: must be a JSON object")
    body = dict(given)
    if args.name is not None:
        body["name"] = args.name
    if args.type:
        body["subscriptions"] = [{"event_type": t} for t in _split(args.type)]
    destination = _destination(args, given, current)
    if destination is not None:
        body["destination"] = destination
    if args.status is not None:
        body["status"] = args.status
    if args.signing_secret:
        body["signing_secrets"] = list(args.signing_secret)
    delivery = dict(given.get("delivery") or {})
    if args.timeout is not None:
        delivery["timeout"] = args.timeout
    if args.max_in_flight is not None:
        delivery["max_in_flight"] = args.max_in_flight
    if args.ordering is not None:
        delivery["ordering"] = args.ordering
    if args.start_position is not None:
        position = args.start_position
        if position not in {"now", "earliest"}:
            position = iso_time(position, "--start-position")
        delivery["start_position"] = position
    if delivery:
        body["delivery"] = delivery
    return body


# rendering ---------------------------------------------------------------------------------
def describe_destination(destination: dict[str, Any]) -> str:
    """A destination in a few words, e.g. ``https://x/hook (bearer)``."""
    config = destination.get("configuration") or {}
    if destination.get("type") == "eventbridge":
        return (
            f"eventbridge {config.get('event_bus_name')} "
            f"({config.get('aws_account_id')}, {config.get('aws_region')})"
        )
    auth = config.get("webhook_authorization") or {}
    method = auth.get("method")
    detail = {
        "bearer": " (bearer token)",
        "basic": f" (basic {auth.get('username')})",
        "custom_header": f" (header {auth.get('header_key')})",
    }.get(method or "", "")
    return f"{config.get('webhook_endpoint')}{detail}"


def _types(stream: dict[str, Any]) -> str:
    return ", ".join(s["event_type"] for s in stream["subscriptions"])


def describe_stream(stream: dict[str, Any]) -> str:
    """A stream as aligned ``key: value`` lines."""
    delivery = stream.get("delivery") or {}
    schedule = delivery.get("retry_schedule")
    status = stream["status"]
    if stream.get("status_reason"):
        status += f" ({stream['status_reason']})"
    rows = [
        ("id", stream["id"]),
        ("name", stream["name"]),
        ("status", status),
        ("event types", _types(stream)),
        ("destination", describe_destination(stream["destination"])),
        ("signing secrets", f"{stream.get('signing_secrets_count', 0)} (write-only)"),
        ("timeout", delivery.get("timeout")),
        ("max in flight", delivery.get("max_in_flight")),
        ("ordering", delivery.get("ordering", "none")),
        ("start position", delivery.get("start_position")),
        ("retry schedule", ", ".join(schedule) if schedule else "the installation's"),
        ("permanent 4xx", delivery.get("permanent_4xx")),
        ("auto-disable", f"after {delivery.get('auto_disable_after')} consecutive failures"),
        ("created", stream["created_at"]),
        ("updated", stream["updated_at"]),
    ]
    width = max(len(key) for key, _value in rows) + 2
    return "\n".join(f"{key + ':':<{width}}{value}" for key, value in rows)


def _show(args: argparse.Namespace, stream: dict[str, Any], headline: str | None = None) -> None:
    if _as_json(args, stream):
        return
    if headline:
        print(headline)
    print(describe_stream(stream))


# stream commands ---------------------------------------------------------------------------
@reports_api_errors
def cmd_list(args: argparse.Namespace, _settings: Settings) -> int:
    """Every stream, oldest first."""
    streams = client_from_args(args).list_streams()
    if _as_json(args, streams):
        return 0
    if streams:
        rows = [
            (
                s["id"],
                s["name"],
                s["status"],
                _types(s),
                describe_destination(s["destination"]),
                _when(s["updated_at"]),
            )
            for s in streams
        ]
        print(render_table(("ID", "NAME", "STATUS", "TYPES", "DESTINATION", "UPDATED"), rows))
    print(f"({len(streams)} event stream{'' if len(streams) == 1 else 's'})")
    return 0


@reports_api_errors
def cmd_create(args: argparse.Namespace, _settings: Settings) -> int:
    """Create a stream from the options and/or ``--from-json``."""
    stream = client_from_args(args).create_stream(stream_body(args))
    _show(args, stream, f"Created event stream {stream['id']}.")
    return 0


@reports_api_errors
def cmd_show(args: argparse.Namespace, _settings: Settings) -> int:
    """One stream."""
    _show(args, client_from_args(args).resolve(args.stream))
    return 0


@reports_api_errors
def cmd_update(args: argparse.Namespace, _settings: Settings) -> int:
    """PATCH the fields the options give."""
    client = client_from_args(args)
    current = client.resolve(args.stream)
    body = stream_body(args, current)
    if not body:
        raise CliError("nothing to update: give at least one option (see --help)")
    stream = client.update_stream(current["id"], body)
    _show(args, stream, f"Updated event stream {stream['id']}.")
    return 0


@reports_api_errors
def cmd_delete(args: argparse.Namespace, _settings: Settings) -> int:
    """Delete a stream after confirmation (``--yes`` skips it); declining exits 1."""
    client = client_from_args(args)
    stream = client.resolve(args.stream)
    label = f"{stream['id']} ({stream['name']})"
    if not args.yes and not confirm(f"Delete event stream {label}?"):
        print("Aborted; nothing deleted.", file=sys.stderr)
        return 1
    client.delete_stream(stream["id"])
    if not _as_json(args, {"id": stream["id"], "deleted": True}):
        print(f"Deleted event stream {label}.")
    return 0


@reports_api_errors
def cmd_trigger(args: argparse.Namespace, _settings: Settings) -> int:
    """Send a test event (``a0purpose: "test"``) to one stream."""
    client, stream_id = _target(args)
    body: dict[str, Any] = {"event_type": args.event_type}
    data = _read_json_arg(args.data, "--data")
    if data is not None:
        body["data"] = data
    answer = client.request("POST", f"{_base(stream_id)}/test", body)
    if not _as_json(args, answer):
        print(f"Test event {answer['event_id']} ({args.event_type}) sent to {stream_id}.")
    return 0


# deliveries --------------------------------------------------------------------------------
_DELIVERY_COLUMNS: Final = (
    *("FIRST ATTEMPT", "EVENT ID", "TYPE", "STATUS"),
    *("ATTEMPTS", "HTTP", "NEXT ATTEMPT", "LAST ERROR"),
)


def _delivery_rows(deliveries: Sequence[dict[str, Any]]) -> list[tuple[object, ...]]:
    return [
        (
            _when(d["first_attempt_at"]),
            d["event_id"],
            d["event_type"] + (" (test)" if d.get("purpose") == "test" else ""),
            d["status"],
            d["attempts"],
            d.get("last_http_status") or "-",
            _when(d.get("next_attempt_at")),
            _clip(d.get("last_error")),
        )
        for d in deliveries
    ]


@reports_api_errors
def cmd_deliveries_list(args: argparse.Namespace, _settings: Settings) -> int:
    """The stream's deliveries, newest first: one page, or every page with ``--all``."""
    client, stream_id = _target(args)
    params = {
        "statuses": ",".join(_split(args.status)) or None,
        "event_types": ",".join(_split(args.type)) or None,
        "date_from": iso_time(args.since, "--from"),
        "date_to": iso_time(args.until, "--to"),
        "take": str(args.take),
        "from": args.cursor,
    }
    path = f"{_base(stream_id)}/deliveries"
    deliveries: list[dict[str, Any]] = []
    cursor: str | None = None
    for page in client.pages(path, params):
        deliveries.extend(page["deliveries"])
        cursor = page.get("next")
        if not args.all:
            break
    if _as_json(args, {"deliveries": deliveries, "next": cursor}):
        return 0
    if deliveries:
        print(
            render_table(
                _DELIVERY_COLUMNS,
                _delivery_rows(deliveries),
                numeric={4, 5},
            )
        )
    more = f"; more with --all or --cursor {cursor}" if cursor else ""
    print(f"({len(deliveries)} deliver{'y' if len(deliveries) == 1 else 'ies'}{more})")
    return 0


@reports_api_errors
def cmd_deliveries_show(args: argparse.Namespace, _settings: Settings) -> int:
    """Every attempt of one event."""
    client, stream_id = _target(args)
    detail = client.request("GET", f"{_base(stream_id)}/deliveries/{quote(args.event_id, safe='')}")
    if _as_json(args, detail):
        return 0
    kind = f"{detail['event_type']}{', test' if detail.get('purpose') == 'test' else ''}"
    print(f"event:   {detail['event_id']} ({kind})")
    print(f"stream:  {detail['stream_id']}")
    print(f"status:  {detail['status']}")
    letter = detail.get("dead_letter")
    if letter:
        print(f"dead-lettered: {_when(letter['at'])} ({letter.get('reason') or 'no reason'})")
    rows = [
        (
            a["attempt"],
            _when(a["at"]),
            a["status"],
            a.get("http_status") or "-",
            f"{a['duration_ms']:.0f}ms",
            _when(a.get("next_attempt_at")),
            a.get("error") or "-",
        )
        for a in detail["attempts"]
    ]
    print(
        render_table(
            ("ATTEMPT", "AT", "STATUS", "HTTP", "DURATION", "NEXT ATTEMPT", "ERROR"),
            rows,
            numeric={0, 3, 4},
        )
    )
    for a in detail["attempts"]:
        if a.get("response_body"):
            print(f"receiver's answer to attempt {a['attempt']}: {a['response_body']}")
    event = detail.get("event")
    if event is not None:
        print("event as delivered:")
        print(json.dumps(event, indent=2))
    else:
        print("event as delivered: no longer retained by Kafka")
    return 0


@reports_api_errors
def cmd_redeliver(args: argparse.Namespace, _settings: Settings) -> int:
    """Redeliver each event; one that cannot be redelivered is reported and the rest go on
    (exit status 1 if any failed)."""
    client, stream_id = _target(args)
    results: list[dict[str, Any]] = []
    for event_id in args.event_ids:
        try:
            client.request("POST", f"{_base(stream_id)}/redeliver/{quote(event_id, safe='')}")
        except AdminApiError as exc:
            results.append({"event_id": event_id, "accepted": False, "error": str(exc)})
            if not args.json:
                print(f"error: {event_id}: {exc}", file=sys.stderr)
            continue
        results.append({"event_id": event_id, "accepted": True})
        if not args.json:
            print(f"Redelivering {event_id}.")
    _as_json(args, results)
    return 0 if all(r["accepted"] for r in results) else 1


@reports_api_errors
def cmd_redeliver_many(args: argparse.Namespace, _settings: Settings) -> int:
    """Redeliver every event matching the filters (every failed one without filters)."""
    client, stream_id = _target(args)
    body = {
        "statuses": _split(args.status) or None,
        "event_types": _split(args.type) or None,
        "date_from": iso_time(args.since, "--from"),
        "date_to": iso_time(args.until, "--to"),
    }
    answer = client.request(
        "POST", f"{_base(stream_id)}/redeliver", {k: v for k, v in body.items() if v}
    )
    if _as_json(args, answer):
        return 0
    count, skipped = answer["count"], answer["skipped"]
    note = f" ({skipped} no longer retained by Kafka, skipped)" if skipped else ""
    print(f"Redelivering {count} event{'' if count == 1 else 's'} to {stream_id}{note}.")
    return 0


@reports_api_errors
def cmd_stats(args: argparse.Namespace, _settings: Settings) -> int:
    """Successful and failed attempts per time bucket."""
    client, stream_id = _target(args)
    params = {
        "date_from": iso_time(args.since, "--from"),
        "date_to": iso_time(args.until, "--to"),
        "bucket": args.bucket,
    }
    stats = client.request("GET", f"{_base(stream_id)}/stats", params=params)
    if _as_json(args, stats):
        return 0
    rows: list[tuple[object, ...]] = [
        (_when(b["start"]), b["successful"], b["failed"]) for b in stats["buckets"]
    ]
    rows.append(("total", stats["totals"]["successful"], stats["totals"]["failed"]))
    print(render_table((f"BUCKET ({stats['bucket']})", "SUCCESS", "FAILED"), rows, numeric={1, 2}))
    return 0


# parser ------------------------------------------------------------------------------------
def _common() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_connection_options(options)
    return options


def _stream_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("stream fields (override those of --from-json)")
    group.add_argument("--from-json", metavar="JSON|@FILE", help="the whole body as JSON")
    group.add_argument("--name")
    group.add_argument(
        "--type", action="append", metavar="TYPE", help="event type or wildcard (repeatable)"
    )
    group.add_argument("--endpoint", metavar="URL", help="the webhook's URL")
    group.add_argument("--bearer-token", metavar="TOKEN", help="Authorization: Bearer TOKEN")
    group.add_argument("--basic", metavar="USER:PASSWORD", help="basic authorization")
    group.add_argument("--header", metavar="KEY:VALUE", help="a custom authorization header")
    group.add_argument("--no-auth", action="store_true", help="no webhook authorization")
    group.add_argument(
        "--signing-secret",
        action="append",
        metavar="whsec_…",
        help="Standard Webhooks signing secret (repeatable; replaces all of them)",
    )
    group.add_argument("--status", choices=("enabled", "disabled"))
    group.add_argument("--timeout", metavar="DURATION", help="per attempt, e.g. 5s")
    group.add_argument("--max-in-flight", type=int, metavar="N")
    group.add_argument(
        "--ordering",
        choices=("none", "subject"),
        help="subject: each user's or organization's events in the order they happened "
        "(webhooks only)",
    )
    group.add_argument(
        "--start-position", metavar="POSITION", help="now, earliest, or a time (backfill)"
    )


def _filters(parser: argparse.ArgumentParser, *, what: str) -> None:
    parser.add_argument(
        "--status",
        action="append",
        metavar="STATUS",
        help="latest status: failed, retrying, success, parked (comma-separated or repeatable)",
    )
    parser.add_argument(
        "--type", action="append", metavar="TYPE", help="event type or wildcard (repeatable)"
    )
    parser.add_argument(
        "--from", dest="since", metavar="TIME", help=f"{what} at or after TIME (e.g. -2h)"
    )
    parser.add_argument("--to", dest="until", metavar="TIME", help=f"{what} before TIME")


def register_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``event-streams ...`` to the ``tidings`` command line."""
    root = subparsers.add_parser(
        "event-streams",
        help="manage event streams and their deliveries (admin API)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = root.add_subparsers(dest="action", required=True, metavar="ACTION")
    common = [_common()]

    def add(
        parent: argparse._SubParsersAction[argparse.ArgumentParser],
        name: str,
        handler: Any,
        text: str,
    ) -> argparse.ArgumentParser:
        parser = parent.add_parser(name, parents=common, help=text, description=text)
        parser.set_defaults(handler=handler)
        return accept_relative_times(parser)

    add(actions, "list", cmd_list, "list every stream")
    _stream_options(add(actions, "create", cmd_create, "create a stream"))
    add(actions, "show", cmd_show, "show one stream").add_argument("stream", help="id or name")
    update = add(actions, "update", cmd_update, "change a stream")
    update.add_argument("stream", help="id or name")
    _stream_options(update)
    delete = add(actions, "delete", cmd_delete, "delete a stream")
    delete.add_argument("stream", help="id or name")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    trigger = add(actions, "trigger", cmd_trigger, "send a test event")
    trigger.add_argument("stream", help="id or name")
    trigger.add_argument("event_type", help="e.g. user.created")
    trigger.add_argument("--data", metavar="JSON|@FILE", help="data.object (default: a sample)")

    deliveries = actions.add_parser("deliveries", help="a stream's delivery history")
    history = deliveries.add_subparsers(dest="deliveries_action", required=True)
    listing = add(history, "list", cmd_deliveries_list, "list deliveries, newest first")
    listing.add_argument("stream", help="id or name")
    _filters(listing, what="first attempt")
    listing.add_argument("--take", type=int, default=50, help="items per page (1-100)")
    listing.add_argument("--all", action="store_true", help="follow the cursors to the end")
    listing.add_argument("--cursor", help="start at this page (`next` of a previous one)")
    show = add(history, "show", cmd_deliveries_show, "every attempt of one event")
    show.add_argument("stream", help="id or name")
    show.add_argument("event_id", metavar="event-id")

    again = add(actions, "redeliver", cmd_redeliver, "redeliver events by id")
    again.add_argument("stream", help="id or name")
    again.add_argument("event_ids", nargs="+", metavar="event-id")
    many = add(
        actions, "redeliver-many", cmd_redeliver_many, "redeliver by filter (default: every failed)"
    )
    many.add_argument("stream", help="id or name")
    _filters(many, what="first attempt")

    stats = add(actions, "stats", cmd_stats, "successful and failed attempts over time")
    stats.add_argument("stream", help="id or name")
    stats.add_argument("--from", dest="since", metavar="TIME", help="window start (default -24h)")
    stats.add_argument("--to", dest="until", metavar="TIME", help="window end (default now)")
    stats.add_argument("--bucket", metavar="DURATION", help="bucket size, e.g. 1m, 1h")

"""``tidings listen --forward-to URL``: the development loop for someone writing a receiver.

It follows the Events API (``GET /v1/events``) and posts each event to a local URL the way a
webhook stream would: the same CloudEvents JSON, ``Content-Type: application/json``, and the
Standard Webhooks headers (``webhook-id`` is the event id; ``webhook-signature`` when a
``--secret`` is given; ``a0stream`` is the Events API's, or ``--stream-id``). One line per
event shows the local server's answer.

The cursor of the last event the local server accepted (or answered for good) is kept in a
small state file, so a restarted ``listen`` resumes exactly there. A failing local endpoint
(no answer, 5xx, 408, 429) is retried with back-off (doubling from 0.5 s to 10 s,
``Retry-After`` honoured) before the next event is taken: nothing is skipped while you fix
your receiver. Other 4xx answers are printed and the event is passed, as a webhook stream
dead-letters them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TextIO

import httpx
from httpx_sse import aconnect_sse

from admin.api.cli import TOKEN_ENV
from admin.client import DEFAULT_URL, URL_ENV
from dispatcher.outcome import OutcomeKind, classify
from dispatcher.signing import signature_headers, validate_secret
from producer.config import Settings
from schemas.ids import is_stream_id

#: Where the cursor is kept when --state is not given.
DEFAULT_STATE: Final = Path(".tidings-listen.json")
FIRST_BACKOFF: Final = 0.5
MAX_BACKOFF: Final = 10.0
#: Seconds one POST to the local server may take.
FORWARD_TIMEOUT: Final = 10.0


@dataclass(frozen=True)
class ListenOptions:
    """What to follow and where to forward it."""

    forward_to: str
    api_url: str
    token: str
    patterns: tuple[str, ...] = ()
    secrets: tuple[str, ...] = ()
    state_file: Path = DEFAULT_STATE
    from_timestamp: str | None = None
    stream_id: str | None = None


@dataclass
class StateFile:
    """The last cursor, written atomically (a crash leaves the old one or the new one)."""

    path: Path
    cursor: str | None = field(default=None, init=False)

    def load(self) -> str | None:
        """The saved cursor, if any."""
        with contextlib.suppress(FileNotFoundError):
            self.cursor = json.loads(self.path.read_text(encoding="utf-8")).get("cursor")
        return self.cursor

    def save(self, cursor: str) -> None:
        """Keep ``cursor`` (skipped when unchanged)."""
        if cursor == self.cursor:
            return
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text(json.dumps({"cursor": cursor}), encoding="utf-8")
        os.replace(temporary, self.path)
        self.cursor = cursor


class ListenError(Exception):
    """The Events API refused for good (bad token, cursor past retention, bad filter)."""


def _error_message(data: str) -> str:
    """The code and message of an ``event: error`` (``{"error": {"code", "message"}}``, as
    Auth0's), or what could be read of it: the server's words are not trusted to parse."""
    try:
        error = json.loads(data).get("error") if data else None
    except (ValueError, AttributeError):
        return data[:200]
    if not isinstance(error, dict):
        return data[:200]
    return f"{error.get('code', 'error')}: {error.get('message', '')}"


def _line(out: TextIO, text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {text}", file=out, flush=True)


async def forward(
    local: httpx.AsyncClient, options: ListenOptions, event: dict[str, Any], out: TextIO
) -> None:
    """POST one event until the local server accepts it or refuses it for good."""
    if options.stream_id is not None:
        event = {**event, "a0stream": options.stream_id}
    body = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
    delay = FIRST_BACKOFF
    while True:
        headers = {
            "Content-Type": "application/json",
            **signature_headers(list(options.secrets), str(event["id"]), body),
        }
        started = time.monotonic()
        try:
            answer = await local.post(options.forward_to, content=body, headers=headers)
            outcome = classify(
                answer.status_code, retry_after_header=answer.headers.get("Retry-After")
            )
            shown = str(answer.status_code)
        except httpx.TimeoutException:
            outcome, shown = classify(None, timed_out=True, error="timed out"), "timed out"
        except httpx.TransportError as exc:
            outcome, shown = classify(None, error=str(exc)), f"no answer ({exc})"
        took = (time.monotonic() - started) * 1000
        text = f"{event['type']:<34} {event['id']} -> {shown} ({took:.0f} ms)"
        if outcome.kind is not OutcomeKind.RETRYABLE:
            passed = "" if outcome.kind is OutcomeKind.SUCCESS else "  (not retried)"
            _line(out, text + passed)
            return
        wait = max(delay, outcome.retry_after or 0.0)
        _line(out, f"{text}  retrying in {wait:.1f} s")
        await asyncio.sleep(wait)
        delay = min(delay * 2, MAX_BACKOFF)


async def _follow(
    api: httpx.AsyncClient,
    local: httpx.AsyncClient,
    options: ListenOptions,
    state: StateFile,
    out: TextIO,
) -> None:
    """One connection to the Events API, until the server closes it."""
    params: list[tuple[str, str]] = [("event_type", p) for p in options.patterns]
    headers = {}
    if state.cursor:
        headers["Last-Event-ID"] = state.cursor
    elif options.from_timestamp:
        params.append(("from_timestamp", options.from_timestamp))
    async with aconnect_sse(api, "GET", "/v1/events", params=params, headers=headers) as source:
        answer = source.response
        if answer.status_code != 200:
            await answer.aread()
            message = answer.json().get("message", answer.reason_phrase) if answer.content else ""
            if answer.status_code in (429, 503):
                wait = float(answer.headers.get("Retry-After", "2"))
                _line(
                    out,
                    f"events API busy ({answer.status_code}: {message}); retrying in {wait:g} s",
                )
                await asyncio.sleep(wait)
                return
            raise ListenError(f"the events API answered {answer.status_code}: {message}")
        async for sse in source.aiter_sse():
            if sse.event == "offset-only":
                state.save(sse.id)
            elif sse.event == "error":
                reason = _error_message(sse.data)
                _line(out, f"events API closing the connection: {reason}")
            elif sse.data and sse.event != "message":
                await forward(local, options, json.loads(sse.data)["event"], out)
                state.save(sse.id)


async def listen(options: ListenOptions, *, out: TextIO = sys.stdout) -> None:
    """Follow the Events API and forward every event, until cancelled. Raises
    :class:`ListenError` when the API refuses for good."""
    state = StateFile(options.state_file)
    if state.load():
        _line(out, f"resuming after the cursor saved in {options.state_file}")
    auth = {"Authorization": f"Bearer {options.token}"}
    timeout = httpx.Timeout(30.0, read=120.0)  # heartbeats arrive every 15 s
    async with (
        httpx.AsyncClient(base_url=options.api_url, headers=auth, timeout=timeout) as api,
        # The local receiver: no proxy from the environment, no redirects, as a stream does.
        httpx.AsyncClient(timeout=FORWARD_TIMEOUT, trust_env=False) as local,
    ):
        _line(out, f"forwarding events from {options.api_url} to {options.forward_to}")
        delay = FIRST_BACKOFF
        while True:
            try:
                await _follow(api, local, options, state, out)
                delay = FIRST_BACKOFF
            except httpx.TransportError as exc:
                _line(out, f"events API unreachable ({exc}); retrying in {delay:.1f} s")
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF)


def cmd_listen(args: argparse.Namespace, _settings: Settings) -> int:
    """``tidings listen``: run until Ctrl-C."""
    token = args.token or os.environ.get(TOKEN_ENV)
    if not token:
        print(f"error: give --token or set {TOKEN_ENV}", file=sys.stderr)
        return 1
    try:
        secrets = tuple(validate_secret(s) for s in args.secret or ())
    except ValueError as exc:
        print(f"error: --secret: {exc}", file=sys.stderr)
        return 1
    if args.stream_id is not None and not is_stream_id(args.stream_id):
        print(
            "error: --stream-id: a stream id is est_ followed by letters and digits",
            file=sys.stderr,
        )
        return 1
    options = ListenOptions(
        forward_to=args.forward_to,
        api_url=(args.url or os.environ.get(URL_ENV) or DEFAULT_URL).rstrip("/"),
        token=token,
        patterns=tuple(args.type or ()),
        secrets=secrets,
        state_file=Path(args.state),
        from_timestamp=args.from_timestamp,
        stream_id=args.stream_id,
    )
    try:
        asyncio.run(listen(options))
    except ListenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


def register_cli(subparsers: Any) -> None:
    """Add ``listen --forward-to URL [--type P]... [--secret S]... [--state F]``."""
    parser = subparsers.add_parser(
        "listen", help="forward events from the Events API to a local URL (development loop)"
    )
    parser.add_argument("--forward-to", required=True, help="e.g. http://localhost:3000/webhook")
    parser.add_argument("--type", action="append", help="event types, wildcards allowed (repeat)")
    parser.add_argument(
        "--secret", action="append", help="sign requests with this whsec_ secret (repeat)"
    )
    parser.add_argument("--state", default=str(DEFAULT_STATE), help="where the cursor is kept")
    parser.add_argument(
        "--stream-id", help="the a0stream the bodies carry (default: the Events API's)"
    )
    parser.add_argument(
        "--from-timestamp", help="with no saved cursor, start at this time (default: now)"
    )
    parser.add_argument("--url", help=f"the admin API (default: ${URL_ENV} or {DEFAULT_URL})")
    parser.add_argument("--token", help=f"the admin API token (default: ${TOKEN_ENV})")
    parser.set_defaults(handler=cmd_listen)

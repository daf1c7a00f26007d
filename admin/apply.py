"""``tidings apply -f streams.yaml``: make the installation's streams match a file.

Declarative provisioning in the manner of Terraform's ``auth0_event_stream``. The file::

    prune: false                 # optional; --prune also turns it on
    streams:
      - name: crm-sync           # the stable key: streams are matched by name
        subscriptions: [{event_type: "user.*"}]
        destination:
          type: webhook
          configuration:
            webhook_endpoint: https://crm.example.com/hooks/identity
            webhook_authorization: {method: bearer, token: "${CRM_WEBHOOK_TOKEN}"}
        signing_secrets: ["${CRM_SIGNING_SECRET}"]
        delivery: {timeout: 5s}

Each stream has the fields of the API's create body. ``${VAR}`` in any string is replaced by
the environment variable (``$$`` is a literal ``$``), so secrets need not sit in the file;
an unset variable is an error. The whole file is validated with the API's own models
before anything is changed.

A stream of the file that does not exist is created. One that exists is PATCHed with the
top-level fields whose public form differs; a field the file leaves out means its default,
so the file is the whole truth. Secrets are write-only and cannot be compared: they are
sent on create, when the destination or the number of signing secrets changes (the API
replaces those as a whole), and on every stream that has them with ``--rotate-secrets``;
the output says each time. With ``--prune`` (or ``prune: true``), streams not in the file
are deleted. ``--dry-run`` prints the same plan and changes nothing. A second apply of the
same file finds nothing to do.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import yaml
from pydantic import BaseModel, ValidationError

from admin.api.errors import from_validation
from admin.api.models import WRITABLE_FIELDS, StreamCreate, StreamOut
from admin.cli import CliError
from admin.cli_streams import print_json
from admin.client import (
    AdminApiClient,
    AdminApiError,
    add_connection_options,
    client_from_args,
    reports_api_errors,
)
from dispatcher.streams import Stream
from producer.config import Settings

_PLACEHOLDER: Final = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)\})")
#: The fields compared between the file and the API, in the order diffs are shown.
_COMPARED: Final = (
    "name",
    "subscriptions",
    "destination",
    "status",
    "delivery",
    "signing_secrets_count",
)
_SECRET_OF_METHOD: Final = {
    "bearer": "the bearer token",
    "basic": "the basic password",
    "custom_header": "the header value",
}


# the file ----------------------------------------------------------------------------------
def interpolate(value: Any, environ: Mapping[str, str], where: str = "") -> Any:
    """``value`` with ``${VAR}`` replaced in every string (``$$`` is ``$``)."""
    if isinstance(value, dict):
        return {k: interpolate(v, environ, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, environ, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(1):
            return "$"
        name = match.group(2)
        if name not in environ:
            raise CliError(f"{where.lstrip('.')}: the environment variable {name} is not set")
        return environ[name]

    return _PLACEHOLDER.sub(substitute, value)


#: Fields that hold secrets: sent as the file gives them (the model never reveals them).
_SECRET_FIELDS: Final = ("destination", "signing_secrets")


def _plain(value: Any) -> Any:
    """A YAML value as JSON can carry it (YAML reads unquoted timestamps as datetimes)."""
    return json.loads(json.dumps(value, default=lambda v: v.isoformat()))


@dataclass(frozen=True)
class DesiredStream:
    """One stream of the file, validated, with the fields as the file gave them."""

    stream: Stream
    given: dict[str, Any] = field(repr=False)

    @property
    def name(self) -> str:
        """The stable key."""
        return self.stream.name

    def body(self, fields: Sequence[str] = WRITABLE_FIELDS) -> dict[str, Any]:
        """A create or PATCH body of ``fields``, secrets included. Other fields come from
        the validated model, so a field the file leaves out is sent as its default and
        ``delivery`` is sent whole (the API merges it key by key)."""
        public = self.stream.model_dump(mode="json", include=set(fields) - set(_SECRET_FIELDS))
        body = {}
        for name in fields:
            if name in _SECRET_FIELDS:
                body[name] = _plain(self.given.get(name, []))
            else:
                body[name] = public[name]
        return body

    def public(self) -> dict[str, Any]:
        """The form compared with the API's answers."""
        return comparable(StreamOut.of(self.stream))

    def secrets(self, fields: Sequence[str] = WRITABLE_FIELDS) -> list[str]:
        """What write-only secrets a body of ``fields`` carries, in words."""
        found = []
        destination = self.stream.destination
        if "destination" in fields and destination.type == "webhook":
            auth = destination.configuration.webhook_authorization
            if auth is not None:
                found.append(_SECRET_OF_METHOD[auth.method])
        count = len(self.stream.signing_secrets)
        if "signing_secrets" in fields and count:
            found.append(f"{count} signing secret{'' if count == 1 else 's'}")
        return found


@dataclass(frozen=True)
class DesiredFile:
    """The streams a file asks for and whether others are to be deleted."""

    streams: list[DesiredStream]
    prune: bool = False


def _validated(raw: Any, where: str) -> DesiredStream:
    if not isinstance(raw, dict):
        raise CliError(f"{where}: each stream must be a mapping")
    name = raw.get("name")
    label = f"{where} ({name})" if isinstance(name, str) else where
    try:
        StreamCreate.model_validate(raw)
        return DesiredStream(Stream.model_validate(raw), raw)
    except ValidationError as exc:
        error = from_validation(exc)
        where_in = f" (field: {error.field})" if error.field else ""
        raise CliError(f"{label}: {error.message}{where_in}") from None


def load_file(text: str, environ: Mapping[str, str]) -> DesiredFile:
    """Parse, interpolate and validate a streams file; every error names its place."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CliError(f"not valid YAML: {exc}".replace("\n", " ")) from None
    if not isinstance(document, dict):
        raise CliError("the file must be a mapping with a `streams` list")
    unknown = sorted(set(document) - {"streams", "prune"})
    if unknown:
        raise CliError(f"unknown top-level key {unknown[0]!r}: use `streams` and `prune`")
    raw_streams = document.get("streams")
    if raw_streams is None:
        raw_streams = []
    prune = document.get("prune", False)
    if not isinstance(raw_streams, list):
        raise CliError("streams: must be a list")
    if not isinstance(prune, bool):
        raise CliError("prune: must be true or false")
    streams = [
        _validated(interpolate(raw, environ, f"streams[{i}]"), f"streams[{i}]")
        for i, raw in enumerate(raw_streams)
    ]
    names = [s.name for s in streams]
    for name in names:
        if names.count(name) > 1:
            raise CliError(f"the name {name!r} is given twice: names identify streams")
    return DesiredFile(streams, prune)


# comparing ---------------------------------------------------------------------------------
def comparable(stream: BaseModel | Mapping[str, Any]) -> dict[str, Any]:
    """The compared fields of a public stream, normalized (subscriptions as a sorted list
    of event types); a mapping is parsed as the API's :class:`StreamOut` first."""
    model = stream if isinstance(stream, BaseModel) else StreamOut.model_validate(stream)
    public = model.model_dump(mode="json")
    result = {name: public[name] for name in _COMPARED}
    result["subscriptions"] = sorted(s["event_type"] for s in public["subscriptions"])
    return result


def _text(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value) or "none"
    return str(value)


def _leaves(value: Any, path: str) -> dict[str, str]:
    if isinstance(value, dict) and value:
        found: dict[str, str] = {}
        for key, item in value.items():
            found.update(_leaves(item, f"{path}.{key}" if path else key))
        return found
    return {path: _text(value)}


@dataclass(frozen=True)
class FieldDiff:
    """One differing value, by dotted path."""

    path: str
    old: str
    new: str


def differences(current: Mapping[str, Any], desired: Mapping[str, Any]) -> list[FieldDiff]:
    """Every differing leaf of two :func:`comparable` forms, in field order."""
    old, new = _leaves(dict(current), ""), _leaves(dict(desired), "")
    diffs = []
    for path in sorted(set(old) | set(new), key=lambda p: (_COMPARED.index(p.split(".")[0]), p)):
        before, after = old.get(path, "none"), new.get(path, "none")
        if before != after:
            label = "signing_secrets" if path == "signing_secrets_count" else path
            diffs.append(FieldDiff(label, before, after))
    return diffs


# the plan ----------------------------------------------------------------------------------
Action = Literal["create", "update", "delete"]


@dataclass(frozen=True)
class Change:
    """One API call of the plan."""

    action: Action
    name: str
    stream_id: str | None = None
    #: The request body: may hold secrets, so it is never printed.
    body: dict[str, Any] = field(default_factory=dict, repr=False)
    diffs: tuple[FieldDiff, ...] = ()
    #: The write-only secrets the body sends, in words.
    secrets: tuple[str, ...] = ()
    #: Why they are sent.
    secrets_because: str = ""

    def lines(self) -> list[str]:
        """The change as diff lines: ``+ create``, ``~ update name: field: old -> new``,
        ``- delete``."""
        sends = f"sends {', '.join(self.secrets)} ({self.secrets_because})"
        if self.action == "create":
            return [f"+ create {self.name}" + (f": {sends}" if self.secrets else "")]
        if self.action == "delete":
            return [f"- delete {self.name} ({self.stream_id})"]
        lines = [f"~ update {self.name}: {d.path}: {d.old} -> {d.new}" for d in self.diffs]
        if self.secrets:
            lines.append(f"~ update {self.name}: {sends}")
        return lines

    def to_json(self) -> dict[str, Any]:
        """The change for ``--json`` (without the body)."""
        return {
            "action": self.action,
            "name": self.name,
            "id": self.stream_id,
            "fields": [{"path": d.path, "old": d.old, "new": d.new} for d in self.diffs],
            "secrets_sent": list(self.secrets),
        }


@dataclass(frozen=True)
class Plan:
    """What apply does: its changes, the streams left alone, and the streams whose secrets
    were neither compared nor sent."""

    changes: list[Change]
    unchanged: list[str]
    secrets_not_sent: list[str]

    def count(self, action: Action) -> int:
        """Changes of one kind."""
        return sum(1 for c in self.changes if c.action == action)


def _update(
    want: DesiredStream, have: Mapping[str, Any], rotate_secrets: bool
) -> tuple[Change | None, bool]:
    """The PATCH that makes ``have`` match ``want`` (None: nothing to do), and whether
    ``want`` has secrets that were left unsent."""
    diffs = differences(comparable(have), want.public())
    fields = {d.path.split(".")[0] for d in diffs}
    because = "the API replaces these fields as a whole"
    if rotate_secrets:
        rotated = {name for name in _SECRET_FIELDS if want.secrets([name])}
        if rotated - fields:
            because = "--rotate-secrets"
        fields |= rotated
    secrets = want.secrets(sorted(fields))
    unsent = len(want.secrets()) > len(secrets)
    if not fields:
        return None, unsent
    ordered = [f for f in WRITABLE_FIELDS if f in fields]
    change = Change(
        "update",
        want.name,
        str(have["id"]),
        want.body(ordered),
        tuple(diffs),
        tuple(secrets),
        because,
    )
    return change, unsent


def plan(
    desired: DesiredFile,
    current: Sequence[Mapping[str, Any]],
    *,
    prune: bool = False,
    rotate_secrets: bool = False,
) -> Plan:
    """Compare the file with the streams the API lists."""
    by_name: dict[str, Mapping[str, Any]] = {}
    for stream in current:
        name = str(stream["name"])
        if name in by_name and any(d.name == name for d in desired.streams):
            raise CliError(f"two streams are named {name!r}: rename or delete one first")
        by_name[name] = stream
    changes: list[Change] = []
    unchanged: list[str] = []
    unsent: list[str] = []
    for want in desired.streams:
        have = by_name.get(want.name)
        if have is None:
            secrets = tuple(want.secrets())
            because = "write-only: later applies send them only with --rotate-secrets"
            changes.append(Change("create", want.name, None, want.body(), (), secrets, because))
            continue
        change, left = _update(want, have, rotate_secrets)
        if change is None:
            unchanged.append(want.name)
        else:
            changes.append(change)
        if left:
            unsent.append(want.name)
    if prune or desired.prune:
        wanted = {d.name for d in desired.streams}
        changes += [
            Change("delete", str(s["name"]), str(s["id"]))
            for s in current
            if s["name"] not in wanted
        ]
    return Plan(changes, unchanged, unsent)


# running -----------------------------------------------------------------------------------
def execute(client: AdminApiClient, planned: Plan, *, echo: bool = True) -> None:
    """Make the changes, deletions first (they free room under the stream limit); with
    ``echo``, each change's lines are printed once the API accepted it."""
    ordered = sorted(planned.changes, key=lambda c: c.action != "delete")
    for done, change in enumerate(ordered):
        try:
            if change.action == "create":
                client.create_stream(change.body)
            elif change.action == "update":
                assert change.stream_id is not None
                client.update_stream(change.stream_id, change.body)
            else:
                assert change.stream_id is not None
                client.delete_stream(change.stream_id)
        except AdminApiError as exc:
            raise CliError(
                f"{change.action} {change.name}: {exc} "
                f"({done} of {len(ordered)} changes made before)"
            ) from None
        if echo:
            print("\n".join(change.lines()))


def _summary(planned: Plan, dry_run: bool) -> str:
    counts = {a: planned.count(a) for a in ("create", "update", "delete")}
    if not planned.changes:
        total = len(planned.unchanged)
        return f"No changes: {total} stream{' matches' if total == 1 else 's match'} the file."
    if dry_run:
        parts = ", ".join(f"{n} to {a}" for a, n in counts.items())
        return f"Plan: {parts}; {len(planned.unchanged)} unchanged (dry run: nothing changed)."
    parts = ", ".join(f"{n} {a}d" for a, n in counts.items())
    return f"Applied: {parts}; {len(planned.unchanged)} unchanged."


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise CliError(f"-f: cannot read {path}: {exc.strerror}") from None


@reports_api_errors
def cmd_apply(args: argparse.Namespace, _settings: Settings) -> int:
    """Create, update and (with --prune) delete streams to match the file."""
    desired = load_file(_read(args.file), os.environ)
    client = client_from_args(args)
    planned = plan(
        desired, client.list_streams(), prune=args.prune, rotate_secrets=args.rotate_secrets
    )
    if not args.dry_run:
        execute(client, planned, echo=not args.json)
    if args.json:
        print_json(
            {
                "dry_run": args.dry_run,
                "changes": [c.to_json() for c in planned.changes],
                "unchanged": planned.unchanged,
                "secrets_not_sent": planned.secrets_not_sent,
            }
        )
        return 0
    if args.dry_run:
        for change in planned.changes:
            print("\n".join(change.lines()))
    if planned.secrets_not_sent:
        names = ", ".join(planned.secrets_not_sent)
        print(
            f"note: secrets are write-only, so they were not compared for {names}; "
            "pass --rotate-secrets to send them again."
        )
    print(_summary(planned, args.dry_run))
    return 0


def register_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``apply -f FILE [--dry-run] [--prune] [--rotate-secrets]``."""
    parser = subparsers.add_parser(
        "apply",
        help="make the event streams match a YAML file (declarative)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-f", "--file", required=True, help="the streams file (- for stdin)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    parser.add_argument("--prune", action="store_true", help="delete streams not in the file")
    parser.add_argument(
        "--rotate-secrets",
        action="store_true",
        help="send every stream's secrets again (they cannot be compared)",
    )
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    add_connection_options(parser)
    parser.set_defaults(handler=cmd_apply)

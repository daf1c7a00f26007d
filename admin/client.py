"""A small synchronous client of the admin API, for the command line.

It speaks JSON over ``urllib`` (a CLI makes a handful of requests, one at a time, so an
event loop would buy nothing) and turns every failure into one of two exceptions whose
text is fit to show the user as it is: :class:`AdminApiError` for the API's stable error
object ``{code, message, field}``, :class:`AdminUnreachable` when no answer came at all.

:func:`reports_api_errors` prints either as one ``error:`` line for the CLI commands.
The URL and token come from ``--url``/``--token`` when given, else ``TIDINGS_ADMIN_URL``
and ``TIDINGS_ADMIN_TOKEN`` (the variable ``tidings admin serve`` reads its token from).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

from admin.api.cli import TOKEN_ENV
from admin.api.errors import ApiError
from admin.cli import CliError
from producer.config import Settings
from schemas.ids import is_stream_id

#: The environment variable holding the admin API's base URL.
URL_ENV: Final = "TIDINGS_ADMIN_URL"
#: Where ``tidings admin serve`` listens by default.
DEFAULT_URL: Final = "http://127.0.0.1:8080"
#: Seconds one request may take.
DEFAULT_TIMEOUT: Final = 30.0
#: Where the streams live.
STREAMS_PATH: Final = "/v1/event-streams"


class AdminApiError(ApiError):
    """The API answered with an error: its HTTP status and ``{code, message, field}``,
    the server's own error shape, read back."""

    def __str__(self) -> str:
        hint = ""
        if self.status == 401:
            hint = f" (set {TOKEN_ENV} or pass --token)"
        where = f" (field: {self.field})" if self.field else ""
        return f"{self.message}{where}{hint}"


class AdminUnreachable(Exception):
    """No HTTP answer: the server is down, the address is wrong or the request timed out."""


class AdminApiClient:
    """The admin API at ``url``, authenticated with ``token``."""

    def __init__(self, url: str, token: str | None, timeout: float = DEFAULT_TIMEOUT) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError(f"the admin API URL must be http(s)://host[:port], not {url!r}")
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    @classmethod
    def from_env(
        cls,
        url: str | None = None,
        token: str | None = None,
        environ: Mapping[str, str] = os.environ,
    ) -> AdminApiClient:
        """A client for the given URL and token, each defaulting to its variable."""
        return cls(
            url or environ.get(URL_ENV) or DEFAULT_URL,
            token or environ.get(TOKEN_ENV) or None,
        )

    # transport -----------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: Mapping[str, str | None] | None = None,
    ) -> Any:
        """Send one request; return the parsed JSON answer (None when it has no body)."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        target = self.url + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(target, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise _api_error(exc.code, exc.reason, exc.read()) from None
        except urllib.error.URLError as exc:
            raise AdminUnreachable(
                f"cannot reach the admin API at {self.url}: {_reason(exc.reason)}"
            ) from None
        except (TimeoutError, ConnectionError) as exc:
            raise AdminUnreachable(
                f"cannot reach the admin API at {self.url}: {_reason(exc)}"
            ) from None
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise AdminUnreachable(
                f"the answer from {self.url} is not JSON: is it the admin API?"
            ) from None

    # streams -------------------------------------------------------------------------------
    def list_streams(self) -> list[dict[str, Any]]:
        """Every stream, oldest first (following the cursors)."""
        found: list[dict[str, Any]] = []
        for page in self.pages(STREAMS_PATH, {"take": "100"}):
            found.extend(page["event_streams"])
        return found

    def get_stream(self, stream_id: str) -> dict[str, Any]:
        """One stream."""
        answer: dict[str, Any] = self.request("GET", _item(stream_id))
        return answer

    def create_stream(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create a stream; return it as stored."""
        answer: dict[str, Any] = self.request("POST", STREAMS_PATH, dict(body))
        return answer

    def update_stream(self, stream_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """PATCH a stream; return it as stored."""
        answer: dict[str, Any] = self.request("PATCH", _item(stream_id), dict(body))
        return answer

    def delete_stream(self, stream_id: str) -> None:
        """Delete a stream."""
        self.request("DELETE", _item(stream_id))

    def resolve(self, ref: str) -> dict[str, Any]:
        """The stream ``ref`` names: an id (``est_…``), else a unique stream name."""
        if is_stream_id(ref):
            return self.get_stream(ref)
        named = [s for s in self.list_streams() if s["name"] == ref]
        if not named:
            raise AdminApiError(404, "not_found", f"no event stream has the id or name {ref!r}")
        if len(named) > 1:
            ids = ", ".join(s["id"] for s in named)
            raise AdminApiError(
                409, "ambiguous", f"{len(named)} streams are named {ref!r}: use an id ({ids})"
            )
        return named[0]

    # paging ---------------------------------------------------------------------------------
    def pages(self, path: str, params: Mapping[str, str | None]) -> Iterator[dict[str, Any]]:
        """Every page of a listing, following each page's ``next`` cursor."""
        cursor = params.get("from")
        while True:
            page: dict[str, Any] = self.request("GET", path, params={**params, "from": cursor})
            yield page
            cursor = page.get("next")
            if not cursor:
                return


def _item(stream_id: str) -> str:
    return f"{STREAMS_PATH}/{urllib.parse.quote(stream_id, safe='')}"


def _reason(reason: object) -> str:
    if isinstance(reason, OSError) and reason.strerror:
        return str(reason.strerror)
    return str(reason) or type(reason).__name__


def _api_error(status: int, reason: str, raw: bytes) -> AdminApiError:
    """The API's error object; a proxy's or a stranger's answer is described as it is."""
    try:
        body = json.loads(raw)
        return AdminApiError(status, str(body["code"]), str(body["message"]), body.get("field"))
    except (ValueError, KeyError, TypeError):
        return AdminApiError(status, "http_error", f"HTTP {status} {reason}".rstrip())


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    """``--url`` and ``--token``, each defaulting to its environment variable."""
    group = parser.add_argument_group("admin API")
    group.add_argument(
        "--url", help=f"the admin API's base URL (default: ${URL_ENV} or {DEFAULT_URL})"
    )
    group.add_argument("--token", help=f"the admin API's bearer token (default: ${TOKEN_ENV})")


CliHandler = Callable[[argparse.Namespace, Settings], int]


def reports_api_errors(handler: CliHandler) -> CliHandler:
    """Turn an API error, an unreachable API or a bad option into one ``error:`` line on
    stderr and exit status 1."""

    @functools.wraps(handler)
    def wrapper(args: argparse.Namespace, settings: Settings) -> int:
        try:
            return handler(args, settings)
        except (AdminApiError, AdminUnreachable, CliError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1

    return wrapper


def client_from_args(args: argparse.Namespace) -> AdminApiClient:
    """The client the ``--url``/``--token`` options (or the environment) describe."""
    return AdminApiClient.from_env(getattr(args, "url", None), getattr(args, "token", None))

"""``tidings admin serve`` argument handling."""

from __future__ import annotations

import argparse

import pytest

from admin.api import register_cli
from admin.api.cli import TOKEN_ENV, cmd_admin_serve
from producer.config import Settings


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register_cli(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_serve_defaults_to_localhost_8080() -> None:
    """Without options the API listens on 127.0.0.1:8080 and the handler is set."""
    args = parse("admin", "serve")
    assert (args.host, args.port, args.handler) == ("127.0.0.1", 8080, cmd_admin_serve)
    args = parse("admin", "serve", "--host", "0.0.0.0", "--port", "9000")
    assert (args.host, args.port) == ("0.0.0.0", 9000)


def test_a_short_token_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A token shorter than 16 characters is an error, before anything starts."""
    monkeypatch.setenv(TOKEN_ENV, "short")
    assert cmd_admin_serve(parse("admin", "serve"), Settings()) == 1
    assert TOKEN_ENV in capsys.readouterr().err

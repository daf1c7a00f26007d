"""Tests for `tidings listen`'s pure parts: the state file and the command's refusals."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from admin.listen import StateFile, cmd_listen
from producer.config import Settings


def test_the_state_file_keeps_the_last_cursor_across_instances(tmp_path: Path) -> None:
    """A saved cursor is what a new instance loads; no temporary file is left behind."""
    path = tmp_path / "state.json"
    assert StateFile(path).load() is None
    state = StateFile(path)
    state.save("MDox")
    state.save("MDoy")
    assert StateFile(path).load() == "MDoy"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def _args(**changes: object) -> argparse.Namespace:
    values: dict[str, object] = {
        "forward_to": "http://localhost:3000/hook",
        "type": None,
        "secret": None,
        "state": "s.json",
        "from_timestamp": None,
        "url": None,
        "token": "t" * 20,
        "stream_id": None,
    }
    values.update(changes)
    return argparse.Namespace(**values)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"token": None}, "--token"),
        ({"secret": ["not-a-secret"]}, "--secret"),
        ({"stream_id": "stream-1"}, "--stream-id"),
    ],
)
def test_listen_refuses_without_a_token_or_with_a_bad_secret(
    changes: dict[str, object],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Exit status 1 with one error line naming the option."""
    monkeypatch.delenv("TIDINGS_ADMIN_TOKEN", raising=False)
    assert cmd_listen(_args(**changes), Settings()) == 1
    assert message in capsys.readouterr().err

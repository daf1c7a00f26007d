"""Tests for dispatcher.subscriptions: pattern matching, validation and the compiled filter."""

from __future__ import annotations

import pytest

from dispatcher import subscriptions
from dispatcher.subscriptions import SubscriptionFilter, matches, validate_pattern
from schemas.constants import EVENT_TYPES

MATCH_CASES = [
    # (patterns, event_type, expected)
    (["user.created"], "user.created", True),
    (["user.created"], "user.updated", False),
    (["*"], "user.created", True),
    (["*"], "organization.member.role.assigned", True),
    (["user.*"], "user.created", True),
    (["user.*"], "user.profile.updated", True),
    (["user.*"], "user", False),
    (["user.*"], "username.created", False),
    (["user.*"], "organization.created", False),
    (["organization.member.*"], "organization.member.added", True),
    (["organization.member.*"], "organization.member.role.assigned", True),
    (["organization.member.*"], "organization.member", False),
    (["organization.member.*"], "organization.created", False),
    (["organization.*"], "organization.member.role.deleted", True),
    (["user.deleted", "organization.member.*"], "user.deleted", True),
    (["user.deleted", "organization.member.*"], "organization.member.added", True),
    (["user.deleted", "organization.member.*"], "user.created", False),
    ([], "user.created", False),
    (["group.*"], "group.created", True),
    (["group.*"], "group.member.added", True),
    (["group.*"], "group.role.deleted", True),
    (["group.*"], "organization.group.role.assigned", False),
    (["group.role.*"], "group.role.assigned", True),
    (["group.role.*"], "group.member.added", False),
    (["organization.connection.*"], "organization.connection.removed", True),
    (["organization.group.*"], "organization.group.role.deleted", True),
    (["organization.*"], "organization.group.role.assigned", True),
]


@pytest.mark.parametrize(("patterns", "event_type", "expected"), MATCH_CASES)
def test_matches(patterns: list[str], event_type: str, expected: bool) -> None:
    """Exact patterns match only their type; '*' matches all; 'x.*' matches anything below x."""
    assert matches(patterns, event_type) is expected


@pytest.mark.parametrize(("patterns", "event_type", "expected"), MATCH_CASES)
def test_filter_agrees_with_matches(patterns: list[str], event_type: str, expected: bool) -> None:
    """The compiled filter gives the same answer as matches(), first time and from its cache."""
    subscribed = SubscriptionFilter(patterns)
    assert subscribed(event_type) is expected
    assert subscribed(event_type) is expected


@pytest.mark.parametrize(
    "patterns",
    [["*"], ["user.*"], ["organization.member.*", "user.deleted"], ["user.created"], []],
)
def test_filter_agrees_with_matches_on_every_known_type(patterns: list[str]) -> None:
    """For every known event type, the filter and matches() agree."""
    subscribed = SubscriptionFilter(patterns)
    for event_type in EVENT_TYPES:
        assert subscribed(event_type) is matches(patterns, event_type), event_type


def test_filter_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many distinct (garbage) event types cannot grow the cache past its limit."""
    monkeypatch.setattr(subscriptions, "_CACHE_LIMIT", 8)
    subscribed = SubscriptionFilter(["user.*"])
    for n in range(50):
        assert subscribed(f"user.x{n}") is True
        assert subscribed(f"other.x{n}") is False
    assert len(subscribed._cache) <= 8
    assert subscribed("user.created") is True


def test_filter_keeps_patterns_for_display() -> None:
    """The filter exposes its patterns and shows them in its repr."""
    subscribed = SubscriptionFilter(["user.*", "organization.created"])
    assert subscribed.patterns == ("user.*", "organization.created")
    assert "user.*" in repr(subscribed)


@pytest.mark.parametrize(
    "pattern",
    [
        "*",
        "user.*",
        "user.created",
        "organization.*",
        "organization.member.*",
        "organization.member.role.*",
        "organization.member.role.assigned",
        "group.*",
        "group.member.added",
        "organization.connection.*",
        "organization.group.role.deleted",
    ],
)
def test_validate_pattern_accepts(pattern: str) -> None:
    """Valid patterns are returned unchanged."""
    assert validate_pattern(pattern) == pattern


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("", "must not be empty"),
        ("user*", "'*' is only allowed"),
        ("*.created", "'*' is only allowed"),
        ("user.*.created", "'*' is only allowed"),
        ("user.cre*", "'*' is only allowed"),
        ("user.**", "'*' is only allowed"),
        ("**", "'*' is only allowed"),
        ("user.", "segment must be non-empty"),
        ("user..created", "segment must be non-empty"),
        (".user", "segment must be non-empty"),
        ("User.created", "segment must be non-empty"),
        (" user.created", "segment must be non-empty"),
        ("customer.*", "unknown event family 'customer'"),
        ("customer.created", "unknown event family 'customer'"),
        ("user", "matches no known event type"),
        ("user.craeted", "matches no known event type"),
        ("user.profile.*", "matches no known event type"),
        ("organization.member.role", "matches no known event type"),
    ],
)
def test_validate_pattern_rejects(pattern: str, message: str) -> None:
    """Malformed, unknown-family and never-matching patterns raise ValueError saying why."""
    with pytest.raises(ValueError, match="subscription pattern") as caught:
        validate_pattern(pattern)
    assert message in str(caught.value)


def test_validate_pattern_known_types_can_be_given() -> None:
    """Validation checks against the known types it is given, defaulting to EVENT_TYPES."""
    assert validate_pattern("role.*", known_types=["role.created"]) == "role.*"
    with pytest.raises(ValueError, match="unknown event family 'user'"):
        validate_pattern("user.created", known_types=["role.created"])


def test_unknown_family_message_lists_known_families() -> None:
    """The unknown-family error tells the user which families exist."""
    with pytest.raises(ValueError, match="known families: group, organization, user"):
        validate_pattern("tenant.*")

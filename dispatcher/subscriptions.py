"""Which event types a stream subscribes to: pattern validation and matching.

A stream lists patterns. Each is an exact event type (``user.created``), the lone wildcard
``*`` (every type), or a prefix wildcard that ends in ``.*`` and matches every type below that
prefix at any depth (``organization.member.*`` matches ``organization.member.added`` and
``organization.member.role.assigned``, but not ``organization.member`` itself).

``validate_pattern`` is for the management surface, where a user typed the pattern;
``matches`` and ``SubscriptionFilter`` are for the delivery path and trust their input.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Final

from schemas.constants import EVENT_TYPES

#: The pattern that matches every event type.
MATCH_ALL: Final = "*"
_WILDCARD_SUFFIX: Final = ".*"
_SEGMENT = re.compile(r"[a-z0-9_]+")

#: How many distinct event types a filter remembers before starting its cache afresh. Event
#: types come from record headers, so a producer writing garbage must not grow memory forever.
_CACHE_LIMIT: Final = 4096


def _is_under(prefix: str, event_type: str) -> bool:
    """Whether ``event_type`` lies strictly below ``prefix`` (which ends with a dot)."""
    return len(event_type) > len(prefix) and event_type.startswith(prefix)


def _pattern_matches(pattern: str, event_type: str) -> bool:
    """Whether one (already valid) pattern matches ``event_type``."""
    if pattern == MATCH_ALL:
        return True
    if pattern.endswith(_WILDCARD_SUFFIX):
        # Keep the dot in the prefix, so "user.*" never matches "username.created".
        return _is_under(pattern[:-1], event_type)
    return pattern == event_type


def matches(patterns: Sequence[str], event_type: str) -> bool:
    """Return whether any of ``patterns`` matches ``event_type``.

    An empty list of patterns matches nothing. Patterns are not validated here: an invalid one
    is compared literally and so in practice never matches.
    """
    return any(_pattern_matches(pattern, event_type) for pattern in patterns)


def validate_pattern(p: str, *, known_types: Iterable[str] = EVENT_TYPES) -> str:
    """Return ``p`` unchanged if it is a valid subscription pattern, else raise ``ValueError``.

    Rejected: the empty string; whitespace or characters other than lowercase letters, digits
    and ``_`` in a segment; empty segments (``user..created``); ``*`` anywhere but as the whole
    last segment after a dot (``user*``, ``*.created``, ``user.*.x``); an unknown top-level
    family (``customer.*``); and a pattern that matches none of ``known_types``, because a
    subscription that can never fire is always a typo (``user.craeted``).
    """
    known = tuple(known_types)
    if not p:
        raise ValueError("subscription pattern must not be empty")
    if p == MATCH_ALL:
        return p
    segments = p.split(".")
    for index, segment in enumerate(segments):
        is_last = index == len(segments) - 1
        if segment == MATCH_ALL and is_last and index > 0:
            continue
        if "*" in segment:
            raise ValueError(
                f"invalid subscription pattern {p!r}: '*' is only allowed alone or as the "
                "whole last segment after a dot, e.g. 'user.*'"
            )
        if not _SEGMENT.fullmatch(segment):
            raise ValueError(
                f"invalid subscription pattern {p!r}: each dot-separated segment must be "
                "non-empty lowercase letters, digits or '_'"
            )
    families = sorted({t.split(".", 1)[0] for t in known})
    if segments[0] not in families:
        raise ValueError(
            f"invalid subscription pattern {p!r}: unknown event family {segments[0]!r}; "
            f"known families: {', '.join(families)}"
        )
    if not any(_pattern_matches(p, t) for t in known):
        raise ValueError(
            f"invalid subscription pattern {p!r}: it matches no known event type; "
            f"known types: {', '.join(known)}"
        )
    return p


class SubscriptionFilter:
    """A compiled set of patterns, called once per record on the delivery hot path.

    Behaves exactly like ``matches(patterns, event_type)`` but answers from a per-type cache
    after the first look-up, and answers from sets instead of scanning every pattern.
    """

    __slots__ = ("_cache", "_exact", "_match_all", "_prefixes", "patterns")

    def __init__(self, patterns: Iterable[str]) -> None:
        """Compile ``patterns`` (validate them beforehand with ``validate_pattern``)."""
        self.patterns: tuple[str, ...] = tuple(patterns)
        self._match_all = MATCH_ALL in self.patterns
        self._exact = frozenset(p for p in self.patterns if not p.endswith(_WILDCARD_SUFFIX))
        self._prefixes = tuple(p[:-1] for p in self.patterns if p.endswith(_WILDCARD_SUFFIX))
        self._cache: dict[str, bool] = {}

    def __call__(self, event_type: str) -> bool:
        """Return whether the stream subscribes to ``event_type``."""
        cached = self._cache.get(event_type)
        if cached is not None:
            return cached
        result = (
            self._match_all
            or event_type in self._exact
            or any(_is_under(prefix, event_type) for prefix in self._prefixes)
        )
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[event_type] = result
        return result

    def __repr__(self) -> str:
        """Show the patterns, for logs and test failures."""
        return f"SubscriptionFilter({list(self.patterns)!r})"

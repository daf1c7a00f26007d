"""Tests for dispatcher.outcome: classification of delivery attempts and Retry-After parsing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dispatcher.outcome import Outcome, OutcomeKind, classify, parse_retry_after

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)

SUCCESS = OutcomeKind.SUCCESS
RETRYABLE = OutcomeKind.RETRYABLE
PERMANENT = OutcomeKind.PERMANENT
GONE = OutcomeKind.GONE


@pytest.mark.parametrize(
    ("status", "kind", "error"),
    [
        (200, SUCCESS, None),
        (201, SUCCESS, None),
        (204, SUCCESS, None),
        (299, SUCCESS, None),
        (500, RETRYABLE, "HTTP 500"),
        (502, RETRYABLE, "HTTP 502"),
        (503, RETRYABLE, "HTTP 503"),
        (504, RETRYABLE, "HTTP 504"),
        (599, RETRYABLE, "HTTP 599"),
        (408, RETRYABLE, "HTTP 408"),
        (429, RETRYABLE, "HTTP 429"),
        (410, GONE, "HTTP 410"),
        (400, PERMANENT, "HTTP 400"),
        (401, PERMANENT, "HTTP 401"),
        (403, PERMANENT, "HTTP 403"),
        (404, PERMANENT, "HTTP 404"),
        (413, PERMANENT, "HTTP 413"),
        (301, PERMANENT, "redirect not followed (3xx)"),
        (302, PERMANENT, "redirect not followed (3xx)"),
        (307, PERMANENT, "redirect not followed (3xx)"),
        (308, PERMANENT, "redirect not followed (3xx)"),
        (101, PERMANENT, "unexpected informational response (1xx)"),
        (600, PERMANENT, "HTTP 600: not a valid status"),
        (99, PERMANENT, "HTTP 99: not a valid status"),
    ],
)
def test_classify_by_status(status: int, kind: OutcomeKind, error: str | None) -> None:
    """Each status class maps to its decision, keeps the status and explains failures."""
    assert classify(status) == Outcome(kind, status, error, None)


@pytest.mark.parametrize(
    ("status", "permanent_4xx", "kind"),
    [
        (400, True, PERMANENT),
        (400, False, RETRYABLE),
        (404, False, RETRYABLE),
        (422, False, RETRYABLE),
        (410, False, GONE),
        (408, True, RETRYABLE),
        (429, True, RETRYABLE),
        (302, False, PERMANENT),
        (200, False, SUCCESS),
    ],
)
def test_permanent_4xx_setting(status: int, permanent_4xx: bool, kind: OutcomeKind) -> None:
    """permanent_4xx=False makes ordinary 4xx retryable but leaves 410 and 3xx as they are."""
    assert classify(status, permanent_4xx=permanent_4xx).kind is kind


@pytest.mark.parametrize(
    ("timed_out", "error", "header", "expected"),
    [
        (True, None, None, Outcome(RETRYABLE, None, "timed out", None)),
        (True, "timeout after 15s", None, Outcome(RETRYABLE, None, "timeout after 15s", None)),
        (False, None, None, Outcome(RETRYABLE, None, "connection error", None)),
        (False, "connection refused", None, Outcome(RETRYABLE, None, "connection refused", None)),
        (False, "connection refused", "30", Outcome(RETRYABLE, None, "connection refused", None)),
    ],
)
def test_no_response_is_retryable(
    timed_out: bool, error: str | None, header: str | None, expected: Outcome
) -> None:
    """A timeout or a connection error (no status) is retryable, with the given error text."""
    assert classify(None, timed_out=timed_out, error=error, retry_after_header=header) == expected


def test_timeout_wins_over_a_status() -> None:
    """A response that arrived too late counts as a timeout, even if it had a 2xx status."""
    outcome = classify(200, timed_out=True, error="timeout after 15s")
    assert outcome.kind is RETRYABLE
    assert outcome.error == "timeout after 15s"


def test_client_error_detail_is_appended() -> None:
    """The client's detail follows the status in the error text."""
    assert classify(503, error="Service Unavailable").error == "HTTP 503: Service Unavailable"


@pytest.mark.parametrize(
    ("status", "header", "retry_after"),
    [
        (503, "120", 120.0),
        (429, "0", 0.0),
        (429, " 7 ", 7.0),
        (429, "1.5", 1.5),
        (429, "-5", 0.0),
        (503, "Sat, 01 Mar 2025 12:01:30 GMT", 90.0),
        (503, "Sat, 01 Mar 2025 11:59:00 GMT", 0.0),
        (503, "Sat, 01 Mar 2025 12:00:10 -0000", 10.0),
        (503, "soon", None),
        (503, "", None),
        (503, "nan", None),
        (503, None, None),
        (408, "3", 3.0),
        (404, "3", None),
        (410, "3", None),
        (200, "3", None),
    ],
)
def test_retry_after_on_retryable_outcomes(
    status: int, header: str | None, retry_after: float | None
) -> None:
    """Retry-After (seconds or HTTP-date) is honoured on retryable answers only, never negative."""
    assert classify(status, retry_after_header=header, now=NOW).retry_after == retry_after


def test_retry_after_on_4xx_made_retryable() -> None:
    """With permanent_4xx=False a 4xx's Retry-After is honoured too."""
    outcome = classify(404, retry_after_header="60", permanent_4xx=False)
    assert outcome == Outcome(RETRYABLE, 404, "HTTP 404", 60.0)


@pytest.mark.parametrize(
    ("header", "now", "expected"),
    [
        ("Sat, 01 Mar 2025 12:00:30 GMT", NOW, 30.0),
        ("Sat, 01 Mar 2025 12:00:30 GMT", NOW.replace(tzinfo=None), 30.0),
        ("Sat, 01 Mar 2025 13:00:30 +0100", NOW, 30.0),
        ("Sat, 01 Mar 2025 12:00:30 GMT", NOW + timedelta(minutes=1), 0.0),
        ("Sunday, 06-Nov-94 08:49:37 GMT", NOW, 0.0),
        ("32 Foo 2025 12:00:00 GMT", NOW, None),
        ("inf", NOW, None),
        ("9" * 400, NOW, None),
    ],
)
def test_parse_retry_after_dates(header: str, now: datetime, expected: float | None) -> None:
    """HTTP-dates are measured from now (naive now taken as UTC); junk is None."""
    assert parse_retry_after(header, now=now) == expected


def test_parse_retry_after_defaults_now_to_the_clock() -> None:
    """Without now, an HTTP-date is measured from the current time."""
    in_an_hour = (datetime.now(UTC) + timedelta(hours=1)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    seconds = parse_retry_after(in_an_hour)
    assert seconds is not None
    assert 3590 <= seconds <= 3600


def test_outcome_kind_is_a_string() -> None:
    """OutcomeKind values serialise as plain strings (for headers and logs)."""
    assert isinstance(OutcomeKind.RETRYABLE, str)
    assert str(OutcomeKind.RETRYABLE) == "retryable"
    assert f"{OutcomeKind.PERMANENT}" == "permanent"
    assert OutcomeKind("gone") is OutcomeKind.GONE

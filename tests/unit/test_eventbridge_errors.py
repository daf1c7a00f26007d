"""Tests for dispatcher.eventbridge's error classification: codes and PutEvents answers."""

from __future__ import annotations

from typing import Any

import pytest

from dispatcher.eventbridge import classify_error_code, outcomes_of_response
from dispatcher.outcome import Outcome, OutcomeKind

RETRYABLE = OutcomeKind.RETRYABLE
PERMANENT = OutcomeKind.PERMANENT


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("ThrottlingException", RETRYABLE),
        ("InternalFailure", RETRYABLE),
        ("InternalException", RETRYABLE),
        ("ServiceUnavailable", RETRYABLE),
        ("ServiceUnavailableException", RETRYABLE),
        ("RequestTimeout", RETRYABLE),
        ("ExpiredTokenException", RETRYABLE),
        ("ValidationException", PERMANENT),
        ("InvalidArgument", PERMANENT),
        ("MalformedDetail", PERMANENT),
        ("RedactionFailure", PERMANENT),
        ("AccessDeniedException", PERMANENT),
        ("NotAuthorizedForSourceException", PERMANENT),
        ("NotAuthorizedForDetailTypeException", PERMANENT),
        ("InvalidAccountIdException", PERMANENT),
        ("ResourceNotFoundException", PERMANENT),
        ("UnrecognizedClientException", PERMANENT),
    ],
)
def test_error_codes(code: str, kind: OutcomeKind) -> None:
    """Throttling and AWS-side failures retry; invalid entries and a wrong bus, account or
    permission are permanent. The error names the code and AWS's message."""
    assert classify_error_code(code, "why") == Outcome(kind, None, f"{code}: why", None)


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("AccessDeniedException", RETRYABLE),
        ("ResourceNotFoundException", RETRYABLE),
        ("NotAuthorizedForSourceException", RETRYABLE),
        ("MalformedDetail", PERMANENT),
        ("ValidationException", PERMANENT),
    ],
)
def test_permanent_4xx_off_retries_configuration_errors_only(code: str, kind: OutcomeKind) -> None:
    """permanent_4xx=false retries a bus or policy still being set up, never a bad entry."""
    assert classify_error_code(code, permanent_4xx=False).kind is kind


@pytest.mark.parametrize(
    ("status", "kind", "error"),
    [
        (None, RETRYABLE, "SomethingNew: x"),
        (503, RETRYABLE, "HTTP 503: SomethingNew: x"),
        (400, PERMANENT, "HTTP 400: SomethingNew: x"),
    ],
)
def test_unknown_codes_fall_back_to_the_http_status(
    status: int | None, kind: OutcomeKind, error: str
) -> None:
    """An unknown code of a whole call follows its HTTP status; of an entry, it is retried."""
    outcome = classify_error_code("SomethingNew", "x", http_status=status)
    assert (outcome.kind, outcome.http_status, outcome.error) == (kind, status, error)


def _response(*entries: dict[str, Any]) -> dict[str, Any]:
    failed = sum(1 for e in entries if "ErrorCode" in e)
    return {
        "FailedEntryCount": failed,
        "Entries": list(entries),
        "ResponseMetadata": {"HTTPStatusCode": 200},
    }


def test_partial_failure_fails_only_the_failed_entries() -> None:
    """Entries with an ErrorCode get its outcome; the others, in order, succeed."""
    response = _response(
        {"EventId": "a"},
        {"ErrorCode": "ThrottlingException", "ErrorMessage": "Rate exceeded"},
        {"EventId": "c"},
        {"ErrorCode": "MalformedDetail", "ErrorMessage": "Detail is malformed."},
    )
    assert [(o.kind, o.error) for o in outcomes_of_response(response, 4)] == [
        (OutcomeKind.SUCCESS, None),
        (RETRYABLE, "ThrottlingException: Rate exceeded"),
        (OutcomeKind.SUCCESS, None),
        (PERMANENT, "MalformedDetail: Detail is malformed."),
    ]


def test_a_success_records_the_http_status() -> None:
    """Accepted entries carry the call's status for the delivery log."""
    (outcome,) = outcomes_of_response(_response({"EventId": "a"}), 1)
    assert outcome == Outcome(OutcomeKind.SUCCESS, 200, None, None)


def test_an_answer_that_does_not_match_the_request_is_retried() -> None:
    """Fewer result entries than sent cannot be matched up: every entry is retried."""
    outcomes = outcomes_of_response(_response({"EventId": "a"}), 2)
    assert [o.kind for o in outcomes] == [RETRYABLE, RETRYABLE]
    assert outcomes[0].error == "PutEvents answered 1 entries for 2"

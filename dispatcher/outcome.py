"""Classification of one delivery attempt: success, retry later, give up, or endpoint gone.

The HTTP client reports what happened (a status, a timeout, a connection error, the
``Retry-After`` header); ``classify`` turns that into the one decision the delivery loop acts
on. Following the Standard Webhooks guidance: 2xx is success; 5xx, 408 and 429 (and any
failure to get an answer) are worth retrying, honouring ``Retry-After``; 410 Gone means the
receiver wants the endpoint disabled; redirects are not followed, so a 3xx is a permanent
failure; any other 4xx is permanent unless the stream opted out of that.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Final


class OutcomeKind(StrEnum):
    """What the delivery loop should do with the record after an attempt.

    A ``StrEnum`` (a ``str``, Enum subclass whose ``str()`` is the bare value), so a kind can go
    straight into a record header, a log field or JSON.
    """

    #: Delivered; commit and move on.
    SUCCESS = "success"
    #: Failed for now; hand the record to the next retry tier.
    RETRYABLE = "retryable"
    #: Will fail again however often we try; dead-letter it.
    PERMANENT = "permanent"
    #: The receiver answered 410 Gone: the endpoint should be disabled.
    GONE = "gone"


@dataclass(frozen=True)
class Outcome:
    """The classified result of one delivery attempt."""

    kind: OutcomeKind
    #: The response status, or None when no response arrived (timeout, connection error).
    http_status: int | None
    #: A human-readable reason for a failure (None on success); safe to show to the customer.
    error: str | None
    #: Seconds the receiver asked us to wait (from ``Retry-After``), only on retryable outcomes.
    retry_after: float | None
    #: The start of the receiver's answer to a failed attempt (for the delivery history).
    response_body: str | None = None


#: Statuses below 500 that still mean "try again later" (Request Timeout, Too Many Requests).
RETRYABLE_4XX: Final = frozenset({408, 429})
_GONE: Final = 410
_DELTA_SECONDS = re.compile(r"-?\d+(?:\.\d+)?")


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Parse a ``Retry-After`` header into seconds to wait from ``now``.

    Accepts delta-seconds (``120``; a decimal or negative number is tolerated) and an HTTP-date
    (``Wed, 21 Oct 2015 07:28:00 GMT``). Returns None when the header is absent or cannot be
    parsed, and 0 when it lies in the past. A date without a zone is taken as UTC, as HTTP
    dates always are; ``now`` defaults to the current time.
    """
    if value is None:
        return None
    text = value.strip()
    if _DELTA_SECONDS.fullmatch(text):
        seconds = float(text)
    else:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        reference = now if now is not None else datetime.now(UTC)
        if reference.tzinfo is None:
            reference = reference.replace(tzinfo=UTC)
        seconds = (when - reference).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)


def _http_error(status: int, error: str | None) -> str:
    """The error text for a response: ``HTTP 503``, plus the client's detail when given."""
    return f"HTTP {status}: {error}" if error else f"HTTP {status}"


def classify(
    http_status: int | None,
    *,
    error: str | None = None,
    timed_out: bool = False,
    retry_after_header: str | None = None,
    permanent_4xx: bool = True,
    now: datetime | None = None,
) -> Outcome:
    """Classify one delivery attempt.

    ``http_status`` is the response status, or None when no response arrived; ``error`` is the
    client's own description of what went wrong (passed through, e.g. ``"timeout after 15s"``
    or ``"connection refused"``); ``timed_out`` says the attempt hit the delivery timeout;
    ``retry_after_header`` is the raw ``Retry-After`` value; ``permanent_4xx`` is the stream's
    setting (False makes ordinary 4xx answers retryable, for receivers that return 4xx while
    deploying); ``now`` is the reference time for an HTTP-date ``Retry-After``.
    """

    def retry(status: int | None, reason: str) -> Outcome:
        seconds = parse_retry_after(retry_after_header, now=now) if status is not None else None
        return Outcome(OutcomeKind.RETRYABLE, status, reason, seconds)

    if timed_out:
        # A timeout wins over any status: the response, if any, did not arrive in time.
        return retry(http_status, error or "timed out")
    if http_status is None:
        return retry(None, error or "connection error")
    if 200 <= http_status < 300:
        return Outcome(OutcomeKind.SUCCESS, http_status, None, None)
    if 500 <= http_status < 600 or http_status in RETRYABLE_4XX:
        return retry(http_status, _http_error(http_status, error))
    if http_status == _GONE:
        return Outcome(OutcomeKind.GONE, http_status, _http_error(http_status, error), None)
    if 400 <= http_status < 500:
        if permanent_4xx:
            return Outcome(
                OutcomeKind.PERMANENT, http_status, _http_error(http_status, error), None
            )
        return retry(http_status, _http_error(http_status, error))
    if 300 <= http_status < 400:
        # Following a redirect would send signed customer data to a URL nobody configured.
        return Outcome(OutcomeKind.PERMANENT, http_status, "redirect not followed (3xx)", None)
    if 100 <= http_status < 200:
        return Outcome(
            OutcomeKind.PERMANENT, http_status, "unexpected informational response (1xx)", None
        )
    return Outcome(
        OutcomeKind.PERMANENT, http_status, f"HTTP {http_status}: not a valid status", None
    )

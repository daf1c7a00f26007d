"""Errors raised while dispatching records, each class carrying the decision it implies.

Retriability is a class attribute, not something callers infer from messages or status codes:
the delivery loop looks at ``error.retryable`` and ``error.poison`` and routes the record to a
retry tier, the dead-letter topic, or nowhere. Keeping the decision on the class means it is made
once, here, instead of in every ``except`` clause.
"""

from __future__ import annotations

from typing import ClassVar


class DispatchError(Exception):
    """Base class of every error the dispatcher raises about a record or a destination."""

    #: Whether trying the same record again later could succeed.
    retryable: ClassVar[bool] = False
    #: Whether the record itself is bad: it goes to the dead-letter topic with its reason and
    #: is never retried, whatever the destination does.
    poison: ClassVar[bool] = False


class DestinationError(DispatchError):
    """The destination failed in a way that may pass (5xx, 429, timeout, connection refused)."""

    retryable: ClassVar[bool] = True


class PermanentDestinationError(DispatchError):
    """The destination refused the record for good (a 4xx it will answer again, a redirect).

    Not a subclass of ``DestinationError``, so an ``except DestinationError`` written to retry
    can never catch it by accident.
    """

    retryable: ClassVar[bool] = False


class PoisonRecordError(DispatchError):
    """A record that cannot be decoded or validated; it goes to the dead-letter topic.

    The message is the reason recorded on the dead-letter record, so it should say what was
    wrong with the bytes (not repeat them).
    """

    poison: ClassVar[bool] = True

    def __init__(self, reason: str) -> None:
        """Keep ``reason`` as the exception message and as an attribute for the DLQ header."""
        super().__init__(reason)
        self.reason = reason


class StreamGoneError(DispatchError):
    """The stream was deleted while some of its records were still in flight.

    Not retryable and not poison: the records are simply dropped (and their offsets marked
    done), because there is no longer anyone to deliver them to.
    """

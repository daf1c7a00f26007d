"""Errors raised when bytes or JSON do not honour the event contract.

Every contract error is a poison input: retrying the same bytes can never succeed, so callers
route the record to the dead-letter topic (or answer 4xx) instead of retrying. Failures of the
schema registry itself (network, 5xx) are not contract errors and propagate unchanged, because
those are worth retrying.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

from pydantic import ValidationError

from schemas.constants import EVENT_TYPES


class ContractError(Exception):
    """Base class: the input breaks the event contract."""

    #: Whether retrying the same input could succeed. Never, for a contract error.
    retryable: ClassVar[bool] = False


class UnknownSchemaError(ContractError):
    """The writer schema (fingerprint or registry id) is not one this build can read."""


class MalformedRecordError(ContractError):
    """The bytes are not a well-formed record: bad magic, truncated, garbage or trailing bytes."""


@dataclass(frozen=True, slots=True)
class FieldError:
    """One validation failure: the dotted path of the field and what is wrong with it."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path or '<event>'}: {self.message}"


class EventValidationError(ContractError):
    """The record decoded, but its content is not a valid lifecycle event."""

    def __init__(self, errors: Iterable[FieldError], *, context: str = "invalid event") -> None:
        self.errors: tuple[FieldError, ...] = tuple(errors)
        super().__init__(f"{context}: " + "; ".join(str(e) for e in self.errors))

    @property
    def paths(self) -> tuple[str, ...]:
        """The dotted paths of the fields that failed, e.g. ``data.object.user_id``."""
        return tuple(e.path for e in self.errors)

    @classmethod
    def from_pydantic(
        cls, exc: ValidationError, *, context: str = "invalid event"
    ) -> EventValidationError:
        """Translate a pydantic error, dropping the event-type tag the union puts in front."""
        errors = []
        for detail in exc.errors(include_url=False):
            loc = [str(part) for part in detail["loc"]]
            if loc and loc[0] in EVENT_TYPES:
                loc = loc[1:]
            if detail["type"] in ("union_tag_invalid", "union_tag_not_found"):
                loc = ["type"]
            errors.append(FieldError(".".join(loc), detail["msg"]))
        return cls(errors, context=context)

"""From a decoded row change to a user event: mapping, types, TOAST, key-only old rows."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from producer.capture_mapping import CaptureMapping, change_event, user_of
from producer.pgoutput import UNCHANGED, Change, Column, Relation
from schemas.errors import EventValidationError
from schemas.ids import derived_event_id
from schemas.models import LifecycleEvent

MAPPING = CaptureMapping(
    table="users",
    subject="id",
    subject_prefix="db|",
    fields={"email": "email", "logins_count": "logins", "app_metadata": "meta"},
)
USERS = Relation(
    1,
    "public",
    "users",
    "f",
    (
        Column("id", 20, True),
        Column("email", 25, False),
        Column("logins", 23, False),
        Column("meta", 3802, False),
    ),
)
AT = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


def _event(change: Change) -> LifecycleEvent | None:
    return change_event(
        MAPPING, USERS, change, committed_at=AT, event_id=derived_event_id(b"x"), tenant="t"
    )


def test_insert_maps_columns_to_typed_user_fields_and_leaves_nulls_out() -> None:
    """An insert is user.created with the prefixed subject and typed fields; NULLs are absent."""
    event = _event(Change("insert", 1, ("7", "a@b.c", "2", None), None, False))
    assert event is not None
    assert event.type == "user.created"
    assert event.time == AT
    assert event.data.object.model_dump(exclude_none=True) == {
        "user_id": "db|7",
        "email": "a@b.c",
        "logins_count": 2,
    }


def test_update_takes_unchanged_toast_values_from_the_full_old_row() -> None:
    """An update's untouched TOASTed column is read from the old row; previous_object is it."""
    old = ("7", "a@b.c", "1", '{"plan": "pro"}')
    event = _event(Change("update", 1, ("7", "new@b.c", "2", UNCHANGED), old, False))
    assert event is not None
    assert event.data.object.app_metadata == {"plan": "pro"}
    assert event.data.object.email == "new@b.c"
    assert event.data.previous_object.email == "a@b.c"


def test_a_key_only_old_row_gives_no_previous_object_and_a_bare_deleted_user() -> None:
    """Without REPLICA IDENTITY FULL: no previous_object; a delete carries only user_id."""
    key_only = ("7", None, None, None)
    updated = _event(Change("update", 1, ("7", "x@y.z", "0", None), key_only, True))
    assert updated is not None
    assert updated.data.previous_object is None
    deleted = _event(Change("delete", 1, None, key_only, True))
    assert deleted is not None
    assert deleted.type == "user.deleted"
    assert deleted.data.object.model_dump(exclude_none=True) == {
        "user_id": "db|7",
        "deleted_at": AT,
    }


def test_a_row_without_its_subject_gives_no_event_and_a_bad_value_is_refused() -> None:
    """No subject: no event. A mapped value that is not a valid field raises, naming it."""
    assert user_of(MAPPING, USERS, (None, "a@b.c", "0", None)) is None
    assert _event(Change("insert", 1, (None, "a@b.c", "0", None), None, False)) is None
    with pytest.raises(EventValidationError, match="logins_count"):
        _event(Change("insert", 1, ("7", None, "-1", None), None, False))

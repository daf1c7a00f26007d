"""The admin view's delivery history index."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from admin.api.history import Coordinates, DeadLetter, DeliveryIndex, HistoryFilter
from dispatcher.delivery_log import AttemptRecord, AttemptStatus

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def record(
    event_id: str, n: int, status: AttemptStatus, seconds: float, event_type: str = "user.created"
) -> AttemptRecord:
    return AttemptRecord(
        stream_id="est_s",
        event_id=event_id,
        event_type=event_type,
        attempt=n,
        status=status,
        duration_ms=2.0,
        at=T0 + timedelta(seconds=seconds),
        origin_topic="life",
        origin_partition=1,
        origin_offset=40 + n,
    )


def test_the_latest_attempt_gives_the_status_even_when_records_arrive_out_of_order() -> None:
    """Attempts are kept in time order; first and last times span them."""
    index = DeliveryIndex()
    index.add_attempt(record("evt_a", 2, "success", 5))
    index.add_attempt(record("evt_a", 1, "retrying", 1))
    event = index.get("est_s", "evt_a")
    assert event is not None
    assert [r.attempt for r in event.attempts] == [1, 2]
    assert event.status == "success"
    assert (event.first_at, event.last_at) == (T0 + timedelta(seconds=1), T0 + timedelta(seconds=5))
    assert event.origin == Coordinates("life", 1, 42)


def test_an_event_known_only_from_the_dead_letter_topic_has_failed() -> None:
    """A poison record dead-lettered without an attempt still shows, as failed."""
    index = DeliveryIndex()
    letter = DeadLetter(T0, "poison record", Coordinates("dlq", 0, 3))
    index.add_dead_letter("est_s", "evt_p", "user.created", letter)
    event = index.get("est_s", "evt_p")
    assert event is not None
    assert (event.status, event.first_at, event.origin, event.dead_letter) == (
        "failed",
        T0,
        None,
        letter,
    )


def test_filters_select_by_latest_status_type_pattern_and_first_attempt_time() -> None:
    """Each filter narrows the selection; the window is [date_from, date_to)."""
    index = DeliveryIndex()
    index.add_attempt(record("evt_a", 1, "success", 1))
    index.add_attempt(record("evt_b", 1, "failed", 2, "organization.created"))
    index.add_attempt(record("evt_c", 1, "retrying", 3, "user.deleted"))

    def ids(selected: HistoryFilter) -> set[str]:
        return {e.event_id for e in index.events("est_s", selected)}

    assert ids(HistoryFilter()) == {"evt_a", "evt_b", "evt_c"}
    assert ids(HistoryFilter(statuses=frozenset({"failed", "retrying"}))) == {"evt_b", "evt_c"}
    assert ids(HistoryFilter(event_types=["user.*"])) == {"evt_a", "evt_c"}
    window = HistoryFilter(date_from=T0 + timedelta(seconds=2), date_to=T0 + timedelta(seconds=3))
    assert ids(window) == {"evt_b"}
    assert index.events("est_other") == []


def test_a_purged_dead_letter_is_forgotten() -> None:
    """A purge marker removes an event known only from the DLQ, and only the dead letter
    of an event with attempts (a marker naming another record changes nothing)."""
    index = DeliveryIndex()
    index.add_attempt(record("evt_a", 1, "failed", 1))
    for event_id, offset in (("evt_a", 1), ("evt_p", 2)):
        letter = DeadLetter(T0, "why", Coordinates("dlq", 0, offset))
        index.add_dead_letter("est_s", event_id, "user.created", letter)
    index.purge_dead_letter(Coordinates("dlq", 0, 99))
    assert {e.event_id for e in index.events("est_s")} == {"evt_a", "evt_p"}
    index.purge_dead_letter(Coordinates("dlq", 0, 1))
    index.purge_dead_letter(Coordinates("dlq", 0, 2))
    (event,) = index.events("est_s")
    assert (event.event_id, event.dead_letter, event.status) == ("evt_a", None, "failed")

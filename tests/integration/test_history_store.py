"""The history store's queries and writes, the same tests on SQLite and on a real PostgreSQL
server (one schema, one set of queries)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from admin.history.batch import Batch, LetterAdded, LetterPurged
from admin.history.model import Coordinates, DeadLetter, HistoryFilter
from admin.history.postgres import PostgresEngine
from admin.history.sqlite import SqliteEngine
from admin.history.store import HistoryStore, OffsetConflict
from dispatcher.delivery_log import AttemptRecord, AttemptStatus

T0 = datetime(2026, 1, 1, tzinfo=UTC)
OFFSETS = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HistoryStore]:
    if request.param == "sqlite":
        engine: SqliteEngine | PostgresEngine = SqliteEngine(tmp_path / "history.sqlite3")
    else:
        engine = PostgresEngine(request.getfixturevalue("pg_dsn"))
    store = HistoryStore(engine)
    yield store
    store.close()


def record(
    event_id: str,
    n: int,
    status: AttemptStatus,
    seconds: float,
    event_type: str = "user.created",
    body: str | None = None,
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
        response_body=body,
    )


def write(store: HistoryStore, *changes: AttemptRecord | LetterAdded | LetterPurged) -> None:
    """One batch holding ``changes``, as if read from one partition."""
    batch = Batch()
    for change in changes:
        if isinstance(change, AttemptRecord):
            batch.add_attempt(change)
        else:
            batch.letters.append(change)
    batch.read("deliveries", 0, next(OFFSETS))
    store.write(batch, store.offsets())


def letter(event_id: str, offset: int, seconds: float = 0) -> LetterAdded:
    at = T0 + timedelta(seconds=seconds)
    where = Coordinates("dlq", 0, offset)
    return LetterAdded("est_s", event_id, "user.created", DeadLetter(at, "why", where))


def test_the_latest_attempt_gives_the_status_even_when_records_arrive_out_of_order(
    store: HistoryStore,
) -> None:
    """Attempts are kept in time order across writes; first and last times span them; the
    receiver's answer is kept for a failed attempt."""
    write(store, record("evt_a", 2, "success", 5))
    write(store, record("evt_a", 1, "retrying", 1, body="busy, try later"))
    event = store.get("est_s", "evt_a")
    assert event is not None
    assert [r.attempt for r in event.attempts] == [1, 2]
    assert event.status == "success"
    assert (event.first_at, event.last_at) == (T0 + timedelta(seconds=1), T0 + timedelta(seconds=5))
    assert event.origin == Coordinates("life", 1, 42)
    assert [r.response_body for r in event.attempts] == ["busy, try later", None]
    assert store.get("est_s", "evt_none") is None
    assert store.get("est_x", "evt_a") is None


def test_an_event_known_only_from_the_dead_letter_topic_has_failed(store: HistoryStore) -> None:
    """A poison record dead-lettered without an attempt still shows, as failed; its first
    attempt, when it arrives, gives the time."""
    write(store, letter("evt_p", 3, seconds=9))
    event = store.get("est_s", "evt_p")
    assert event is not None
    nine = T0 + timedelta(seconds=9)
    assert (event.status, event.first_at, event.origin) == ("failed", nine, None)
    assert event.dead_letter == DeadLetter(nine, "why", Coordinates("dlq", 0, 3))
    write(store, record("evt_p", 1, "retrying", 2))
    event = store.get("est_s", "evt_p")
    assert event is not None
    assert (event.status, event.first_at) == ("retrying", T0 + timedelta(seconds=2))


def test_filters_select_by_latest_status_type_pattern_and_first_attempt_time(
    store: HistoryStore,
) -> None:
    """Each filter narrows the selection; the window is [date_from, date_to); newest first."""
    write(
        store,
        record("evt_a", 1, "success", 1),
        record("evt_b", 1, "failed", 2, "organization.created"),
        record("evt_c", 1, "retrying", 3, "user.deleted"),
    )

    def ids(selected: HistoryFilter) -> list[str]:
        return [e.event_id for e in store.events("est_s", selected)]

    assert ids(HistoryFilter()) == ["evt_c", "evt_b", "evt_a"]
    assert ids(HistoryFilter(statuses=frozenset({"failed", "retrying"}))) == ["evt_c", "evt_b"]
    assert ids(HistoryFilter(statuses=frozenset({"success"}))) == ["evt_a"]
    assert ids(HistoryFilter(event_types=["user.*"])) == ["evt_c", "evt_a"]
    assert ids(HistoryFilter(event_types=["nothing.*"])) == []
    window = HistoryFilter(date_from=T0 + timedelta(seconds=2), date_to=T0 + timedelta(seconds=3))
    assert ids(window) == ["evt_b"]
    assert store.events("est_other") == []


def test_pages_continue_after_a_cursor(store: HistoryStore) -> None:
    """A page starts strictly after the (first attempt, event id) it is given, ties included."""
    write(store, *(record(f"evt_{i}", 1, "success", i // 2) for i in range(6)))
    first = store.events("est_s", limit=4)
    assert [e.event_id for e in first] == ["evt_5", "evt_4", "evt_3", "evt_2"]
    rest = store.events("est_s", before=(first[2].first_at, first[2].event_id), limit=4)
    assert [e.event_id for e in rest] == ["evt_2", "evt_1", "evt_0"]


def test_a_purged_dead_letter_is_forgotten(store: HistoryStore) -> None:
    """A purge marker removes an event known only from the DLQ, and only the dead letter
    of an event with attempts (a marker naming another record changes nothing)."""
    write(store, record("evt_a", 1, "failed", 1), letter("evt_a", 1), letter("evt_p", 2))
    write(store, LetterPurged(Coordinates("dlq", 0, 99)))
    assert {e.event_id for e in store.events("est_s")} == {"evt_a", "evt_p"}
    assert store.dead_letters() == {"est_s": 2}
    write(store, LetterPurged(Coordinates("dlq", 0, 1)), LetterPurged(Coordinates("dlq", 0, 2)))
    (event,) = store.events("est_s")
    assert (event.event_id, event.dead_letter, event.status) == ("evt_a", None, "failed")


def test_counters_add_up_per_second_and_minute(store: HistoryStore) -> None:
    """Stats counters count every attempt by status, across writes."""
    write(store, record("evt_a", 1, "retrying", 1), record("evt_a", 2, "success", 61))
    write(store, record("evt_b", 1, "success", 1.5))
    start = int(T0.timestamp())
    assert store.counters("est_s", start, start + 120, minutes=True) == [
        (start, 1, 1, 0),
        (start + 60, 1, 0, 0),
    ]
    assert store.counters("est_s", start, start + 2, minutes=False) == [(start + 1, 1, 1, 0)]
    assert store.totals() == {"est_s": {"success": 2, "retrying": 1, "failed": 0}}


def test_a_write_from_stale_offsets_is_refused_whole(store: HistoryStore) -> None:
    """Offsets are written with the rows: a writer whose offsets another writer moved
    writes nothing."""
    write(store, record("evt_a", 1, "success", 1))
    stale = store.offsets()
    write(store, record("evt_b", 1, "success", 2))
    batch = Batch()
    batch.add_attempt(record("evt_c", 1, "success", 3))
    batch.read("deliveries", 0, next(OFFSETS))
    with pytest.raises(OffsetConflict):
        store.write(batch, stale)
    assert store.get("est_s", "evt_c") is None


def test_retention_deletes_old_events_and_counters_in_chunks(store: HistoryStore) -> None:
    """Events whose first attempt is before the cutoff go, a chunk at a time; newer stay."""
    write(store, *(record(f"evt_{i}", 1, "success", i * 60) for i in range(5)))
    cutoff = T0 + timedelta(seconds=180)
    assert store.expire(cutoff, chunk=2) == 2
    assert store.expire(cutoff, chunk=2) == 1
    assert store.expire(cutoff, chunk=2) == 0
    assert [e.event_id for e in store.events("est_s")] == ["evt_4", "evt_3"]
    assert store.totals() == {"est_s": {"success": 2, "retrying": 0, "failed": 0}}


def test_a_large_fetch_is_written_whole(store: HistoryStore) -> None:
    """A fetch of more events than one INSERT carries is written in full, counters too."""
    write(store, *(record(f"evt_{i:05d}", 1, "success", i / 1000) for i in range(1234)))
    assert len(store.events("est_s")) == 1234
    assert store.totals() == {"est_s": {"success": 1234, "retrying": 0, "failed": 0}}

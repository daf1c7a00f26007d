"""Read-your-writes in the admin view's stream table."""

from __future__ import annotations

from admin.api.stream_table import StreamTable
from dispatch_kit import webhook_stream
from dispatcher.secret_box import SecretBox, generate_key
from dispatcher.streams import Stream


def state(stream: Stream, **changes: object) -> bytes:
    return stream.model_copy(update=changes).to_registry(BOX)


BOX = SecretBox(generate_key())
BASE = webhook_stream("http://127.0.0.1:1/hook")


def test_a_write_shows_at_once_and_older_records_do_not_hide_it() -> None:
    """After our write is acknowledged, records older than it are ignored until it is read
    back; later records (another writer's) are followed again."""
    table = StreamTable(BOX)
    old, ours, theirs = state(BASE, name="old"), state(BASE, name="ours"), state(BASE, name="x")
    table.observe(BASE.id, old)
    table.begin_write(BASE.id)
    table.end_write(BASE.id, ours)
    assert table.streams[BASE.id].name == "ours"
    table.observe(BASE.id, old)  # a stale record still in flight
    assert table.streams[BASE.id].name == "ours"
    table.observe(BASE.id, ours)
    table.observe(BASE.id, theirs)
    assert table.streams[BASE.id].name == "x"


def test_a_write_read_back_before_its_acknowledgement_leaves_nothing_pending() -> None:
    """If the view read our record (and a later one) before the write returned, the later
    record stays and further records are followed."""
    table = StreamTable(BOX)
    ours, theirs = state(BASE, name="ours"), state(BASE, name="theirs")
    table.begin_write(BASE.id)
    table.observe(BASE.id, ours)
    table.observe(BASE.id, theirs)
    table.end_write(BASE.id, ours)
    assert table.streams[BASE.id].name == "theirs"
    table.observe(BASE.id, state(BASE, name="later"))
    assert table.streams[BASE.id].name == "later"


def test_a_delete_hides_the_stream_until_the_tombstone_and_a_failed_write_changes_nothing() -> None:
    """Deletes are writes too; an aborted write leaves the table as it was."""
    table = StreamTable(BOX)
    table.observe(BASE.id, state(BASE))
    table.begin_write(BASE.id)
    table.abort_write(BASE.id)
    assert BASE.id in table.streams
    table.begin_write(BASE.id)
    table.end_write(BASE.id, None)
    assert BASE.id not in table.streams
    table.observe(BASE.id, state(BASE, name="stale"))
    assert BASE.id not in table.streams
    table.observe(BASE.id, None)
    table.observe(BASE.id, state(BASE, name="recreated"))
    assert table.streams[BASE.id].name == "recreated"


def test_a_conditional_record_on_a_superseded_state_is_ignored() -> None:
    """A rewrite based on a record that a later one replaced (``tidings secrets rotate``
    racing a PATCH) never shows; one based on the current record does."""
    from schemas.constants import HEADER_IF_OFFSET

    table = StreamTable(BOX)
    table.observe(BASE.id, state(BASE, name="original"), offset=10)
    table.observe(BASE.id, state(BASE, name="patched"), offset=11)
    stale = [(HEADER_IF_OFFSET, b"10")]
    table.observe(BASE.id, state(BASE, name="original"), offset=12, headers=stale)
    assert table.streams[BASE.id].name == "patched"
    fresh = [(HEADER_IF_OFFSET, b"11")]
    table.observe(BASE.id, state(BASE, name="rotated"), offset=13, headers=fresh)
    assert table.streams[BASE.id].name == "rotated"

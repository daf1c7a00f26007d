"""The producer library against the real broker: round trips, ordering, validation, back-pressure.

Records are read back raw from the lifecycle topic and decoded with the codec, so these tests
check what a consumer that is not Tidings would see: value, key and headers.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Message
from confluent_kafka.schema_registry import SchemaRegistryClient

from kafka_testkit import read_topic, topic_size
from producer.config import Settings
from producer.producer import AsyncEventProducer, EventProducer, codec_for
from schemas import constants
from schemas.codec import AvroCodec
from schemas.errors import ContractError, EventValidationError, UnknownSchemaError
from schemas.models import EVENT_TIME_FIELDS, LifecycleEvent
from schemas.samples import sample_context, sample_event, sample_object
from schemas.timestamps import format_rfc3339_millis

Call = Callable[[EventProducer], str]


def _updated(obj: dict[str, Any], field: str) -> dict[str, Any]:
    """``obj`` as it was before an update of ``field``."""
    return {**obj, field: "old " + str(obj[field])}


def _calls(seed: int) -> dict[str, tuple[Call, dict[str, Any], dict[str, Any] | None, str]]:
    """For each event type: the typed producer call, the object the event must carry, the
    previous object (where the call gives one) and the subject id the record must be keyed by."""
    ctx = sample_context(seed=seed)
    obj = {t: sample_object(t, seed=seed) for t in constants.EVENT_TYPES}
    user, user_upd, user_del = obj["user.created"], obj["user.updated"], obj["user.deleted"]
    org, org_upd, org_del = (
        obj["organization.created"],
        obj["organization.updated"],
        obj["organization.deleted"],
    )
    added, removed = obj["organization.member.added"], obj["organization.member.deleted"]
    assigned = obj["organization.member.role.assigned"]
    unassigned = obj["organization.member.role.deleted"]
    prev_user, prev_org = _updated(user_upd, "email"), _updated(org_upd, "display_name")
    return {
        "user.created": (
            lambda p: p.user_created(user, context=ctx),
            user,
            None,
            user["user_id"],
        ),
        "user.updated": (
            lambda p: p.user_updated(user_upd, prev_user, ctx),
            user_upd,
            prev_user,
            user_upd["user_id"],
        ),
        "user.deleted": (
            lambda p: p.user_deleted(user_del, context=ctx),
            user_del,
            None,
            user_del["user_id"],
        ),
        "organization.created": (
            lambda p: p.organization_created(org, context=ctx),
            org,
            None,
            org["id"],
        ),
        "organization.updated": (
            lambda p: p.organization_updated(org_upd, prev_org, ctx),
            org_upd,
            prev_org,
            org_upd["id"],
        ),
        "organization.deleted": (
            lambda p: p.organization_deleted(org_del, context=ctx),
            org_del,
            None,
            org_del["id"],
        ),
        "organization.member.added": (
            lambda p: p.organization_member_added(added["organization"], added["user"], ctx),
            added,
            None,
            added["organization"]["id"],
        ),
        "organization.member.deleted": (
            lambda p: p.organization_member_deleted(removed["organization"], removed["user"], ctx),
            removed,
            None,
            removed["organization"]["id"],
        ),
        "organization.member.role.assigned": (
            lambda p: p.organization_member_role_assigned(
                assigned["organization"], assigned["user"], assigned["role"], ctx
            ),
            assigned,
            None,
            assigned["organization"]["id"],
        ),
        "organization.member.role.deleted": (
            lambda p: p.organization_member_role_deleted(
                unassigned["organization"], unassigned["user"], unassigned["role"], ctx
            ),
            unassigned,
            None,
            unassigned["organization"]["id"],
        ),
        **_catalog_calls(obj, ctx),
    }


def _without(obj: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k != key}


def _catalog_calls(
    obj: dict[str, dict[str, Any]], ctx: dict[str, Any]
) -> dict[str, tuple[Call, dict[str, Any], dict[str, Any] | None, str]]:
    """The calls of the types added with Auth0's whole catalog (organization connections and
    group roles, groups). Role events are emitted without their timestamp: it defaults to the
    event time, which the round-trip test checks."""
    con_add, con_upd = obj["organization.connection.added"], obj["organization.connection.updated"]
    con_rm = obj["organization.connection.removed"]
    con_before = {**con_upd, "is_enabled": False, "organization_access_level": "none"}
    settings_of = lambda o: {k: v for k, v in o.items() if k not in ("organization", "connection")}  # noqa: E731
    org_grant = _without(obj["organization.group.role.assigned"], "created_at")
    org_revoke = _without(obj["organization.group.role.deleted"], "deleted_at")
    g_new, g_upd, g_del = obj["group.created"], obj["group.updated"], obj["group.deleted"]
    joined, left = obj["group.member.added"], obj["group.member.deleted"]
    grant = _without(obj["group.role.assigned"], "created_at")
    revoke = _without(obj["group.role.deleted"], "deleted_at")
    return {
        "organization.connection.added": (
            lambda p: p.organization_connection_added(
                con_add["organization"], con_add["connection"], settings_of(con_add), ctx
            ),
            con_add,
            None,
            con_add["organization"]["id"],
        ),
        "organization.connection.updated": (
            lambda p: p.organization_connection_updated(
                con_upd["organization"],
                con_upd["connection"],
                settings_of(con_upd),
                ctx,
                previous=con_before,
            ),
            con_upd,
            con_before,
            con_upd["organization"]["id"],
        ),
        "organization.connection.removed": (
            lambda p: p.organization_connection_removed(
                con_rm["organization"], con_rm["connection"], ctx
            ),
            con_rm,
            None,
            con_rm["organization"]["id"],
        ),
        "organization.group.role.assigned": (
            lambda p: p.organization_group_role_assigned(
                org_grant["organization"], org_grant["group"], org_grant["role"], ctx
            ),
            org_grant,
            None,
            org_grant["organization"]["id"],
        ),
        "organization.group.role.deleted": (
            lambda p: p.organization_group_role_deleted(
                org_revoke["organization"], org_revoke["group"], org_revoke["role"], ctx
            ),
            org_revoke,
            None,
            org_revoke["organization"]["id"],
        ),
        "group.created": (lambda p: p.group_created(g_new, ctx), g_new, None, g_new["id"]),
        "group.updated": (lambda p: p.group_updated(g_upd, None, ctx), g_upd, None, g_upd["id"]),
        "group.deleted": (lambda p: p.group_deleted(g_del, ctx), g_del, None, g_del["id"]),
        "group.member.added": (
            lambda p: p.group_member_added(joined["group"], joined["member"], ctx),
            joined,
            None,
            joined["group"]["id"],
        ),
        "group.member.deleted": (
            lambda p: p.group_member_deleted(left["group"], left["member"], ctx),
            left,
            None,
            left["group"]["id"],
        ),
        "group.role.assigned": (
            lambda p: p.group_role_assigned(grant["group"], grant["role"], ctx),
            grant,
            None,
            grant["group"]["id"],
        ),
        "group.role.deleted": (
            lambda p: p.group_role_deleted(revoke["group"], revoke["role"], ctx),
            revoke,
            None,
            revoke["group"]["id"],
        ),
    }


def _json(model: Any) -> Any:
    """A decoded entity in the JSON shape callers pass in (``None`` stays ``None``)."""
    if model is None:
        return None
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def _headers(message: Message) -> dict[str, bytes]:
    return {name: value for name, value in message.headers() or []}


def _decode_all(codec: AvroCodec, messages: list[Message]) -> list[LifecycleEvent]:
    return [codec.decode(message.value()) for message in messages]


def _user(user_id: str, **fields: Any) -> dict[str, Any]:
    return {"user_id": user_id, **fields}


def test_every_event_type_round_trips_through_the_broker(settings: Settings) -> None:
    """Each typed call produces one record whose value decodes to exactly the input, keyed by
    the subject id, with the event type and id in headers."""
    calls = _calls(seed=7)
    with EventProducer(settings) as producer:
        ids = {event_type: call(producer) for event_type, (call, *_rest) in calls.items()}
        assert producer.flush(30) == 0
        assert producer.failures == []

    messages = read_topic(settings, settings.lifecycle_topic, len(calls))
    assert len(messages) == len(constants.EVENT_TYPES)
    codec = codec_for(settings)
    seen = set()
    for message in messages:
        event = codec.decode(message.value())
        _call, obj, previous, subject = calls[event.type]
        seen.add(event.type)
        assert event.id == ids[event.type]
        assert event.tenant == settings.tenant
        stamp = EVENT_TIME_FIELDS.get(event.type)
        if stamp is not None and stamp not in obj:  # left out: the event time fills it
            obj = {**obj, stamp: format_rfc3339_millis(event.time)}
        assert _json(event.data.object) == obj
        assert _json(event.data.context) == sample_context(seed=7)
        assert _json(getattr(event.data, "previous_object", None)) == previous
        assert message.key() == subject.encode()
        headers = _headers(message)
        assert headers[constants.HEADER_EVENT_TYPE] == event.type.encode()
        assert headers[constants.HEADER_EVENT_ID] == event.id.encode()
    assert seen == set(constants.EVENT_TYPES)


def test_one_subjects_events_stay_in_one_partition_in_produce_order(settings: Settings) -> None:
    """Interleaved events of several users arrive with each user's events in one partition, in
    the order they were produced."""
    users = [f"auth0|order-{uuid.uuid4().hex[:8]}-{n}" for n in range(6)]
    per_user = 40
    with EventProducer(settings) as producer:
        for step in range(per_user):
            for user_id in users:
                producer.user_updated(_user(user_id, logins_count=step))
        assert producer.flush(30) == 0

    messages = read_topic(settings, settings.lifecycle_topic, per_user * len(users))
    by_user: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    codec = codec_for(settings)
    for message in messages:
        event = codec.decode(message.value())
        count = event.data.object.logins_count
        by_user[event.data.object.user_id].append((message.partition(), message.offset(), count))
    assert set(by_user) == set(users)
    for user_id, records in by_user.items():
        assert len({partition for partition, _, _ in records}) == 1, user_id
        in_offset_order = [count for _, _, count in sorted(records)]
        assert in_offset_order == list(range(per_user)), user_id
    partitions = {records[0][0] for records in by_user.values()}
    assert len(partitions) > 1, "six users should not all hash to one of three partitions"


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda p: p.user_created({"email": "no-id@example.com"}), "data.object.user_id"),
        (
            lambda p: p.user_created(_user("auth0|1", email_verified="yes")),
            "data.object.email_verified",
        ),
        (
            lambda p: p.user_created(_user("auth0|1", logins_count="many")),
            "data.object.logins_count",
        ),
        (lambda p: p.user_created(_user("")), "data.object.user_id"),
        (
            lambda p: p.organization_member_added({"name": "acme"}, {"user_id": "auth0|1"}),
            "data.object.organization.id",
        ),
        (
            lambda p: p.user_created(_user("auth0|1"), context={"tenant": {"id": 5}}),
            "data.context.tenant.id",
        ),
    ],
    ids=["missing-user-id", "bool-as-string", "int-as-string", "empty-id", "org-id", "context"],
)
def test_invalid_input_raises_naming_the_field_and_sends_nothing(
    settings: Settings, call: Call, field: str
) -> None:
    """Input breaking the contract raises EventValidationError naming the bad field, before
    anything reaches the topic."""
    with EventProducer(settings) as producer:
        with pytest.raises(EventValidationError) as caught:
            call(producer)
        assert producer.flush(30) == 0
    assert field in caught.value.paths
    assert field in str(caught.value)
    assert isinstance(caught.value, ContractError)
    assert not caught.value.retryable
    assert topic_size(settings, settings.lifecycle_topic) == 0


def test_an_oversized_event_is_refused_and_nothing_is_sent(settings: Settings) -> None:
    """An event encoding to more than max_event_bytes raises naming its size; a normal event
    sent afterwards on the same producer is the only record on the topic."""
    small = settings.model_copy(update={"max_event_bytes": 2048})
    big = _user("auth0|big", app_metadata={"blob": "x" * 4096})
    with EventProducer(small) as producer:
        with pytest.raises(EventValidationError) as caught:
            producer.user_created(big)
        good_id = producer.emit(sample_event("user.created", seed=1), wait=True)
    assert caught.value.paths == ("data",)
    assert "2048" in str(caught.value)
    assert topic_size(settings, settings.lifecycle_topic) == 1
    (message,) = read_topic(settings, settings.lifecycle_topic, 1)
    assert _headers(message)[constants.HEADER_EVENT_ID] == good_id.encode()


def test_sync_emit_with_wait_returns_after_the_acknowledgement(settings: Settings) -> None:
    """emit(wait=True) returns the id only once the record is on the broker: the topic holds
    it before any flush."""
    event = sample_event("organization.created", seed=3)
    with EventProducer(settings) as producer:
        assert producer.emit(event, wait=True) == event.id
        assert topic_size(settings, settings.lifecycle_topic) == 1
    (message,) = read_topic(settings, settings.lifecycle_topic, 1)
    assert codec_for(settings).decode(message.value()) == event


async def test_async_producer_returns_the_id_after_the_acknowledgement(
    settings: Settings,
) -> None:
    """Awaiting a typed call of AsyncEventProducer returns the id once Kafka acknowledged it;
    emit(wait=False) returns once queued and flush() waits for the rest."""
    user = sample_object("user.created", seed=11)
    async with AsyncEventProducer(settings) as producer:
        event_id = await producer.user_created(user)
        assert topic_size(settings, settings.lifecycle_topic) == 1
        queued = sample_event("user.deleted", seed=12)
        assert await producer.emit(queued, wait=False) == queued.id
        assert await producer.flush(30) == 0
        assert topic_size(settings, settings.lifecycle_topic) == 2
    messages = read_topic(settings, settings.lifecycle_topic, 2)
    events = {event.id: event for event in _decode_all(codec_for(settings), messages)}
    assert set(events) == {event_id, queued.id}
    assert _json(events[event_id].data.object) == user
    assert events[queued.id] == queued


async def test_async_producer_rejects_invalid_input_without_sending(settings: Settings) -> None:
    """The async API validates like the sync one: the error names the field, nothing is sent."""
    async with AsyncEventProducer(settings) as producer:
        with pytest.raises(EventValidationError) as caught:
            await producer.organization_created({"name": "acme"})
    assert "data.object.id" in caught.value.paths
    assert topic_size(settings, settings.lifecycle_topic) == 0


def test_a_small_buffer_applies_back_pressure_without_losing_events(settings: Settings) -> None:
    """With room for 10 buffered events, emitting 2,000 blocks instead of failing, and every
    event arrives."""
    tight = settings.model_copy(update={"producer_buffer_messages": 10})
    count = 2000
    with EventProducer(tight) as producer:
        ids = [
            producer.user_updated(_user(f"auth0|bp{i % 50}", logins_count=i)) for i in range(count)
        ]
        assert producer.flush(30) == 0
        assert producer.failures == []
    messages = read_topic(settings, settings.lifecycle_topic, count)
    assert len(messages) == count
    assert {_headers(m)[constants.HEADER_EVENT_ID].decode() for m in messages} == set(ids)


def test_registry_mode_writes_confluent_wire_format(settings: Settings) -> None:
    """With a schema registry configured, records carry the Confluent wire format (magic 0x00
    and the schema id the registry gave the event's subject) and decode through the registry
    to the input."""
    url = f"mock://tidings-{uuid.uuid4().hex}"
    registry_settings = settings.model_copy(update={"schema_registry_url": url})
    events = [sample_event(t, seed=n) for n, t in enumerate(constants.EVENT_TYPES)]
    assert codec_for(registry_settings).encode(events[0])[:1] == constants.CONFLUENT_MAGIC
    # confluent-kafka 2.16's mock registry keeps its schemas per client object, not per URL,
    # so writer and reader share one client here, the way two processes share a server.
    client = SchemaRegistryClient.new_client({"url": url})
    codec = AvroCodec(client, topic=registry_settings.lifecycle_topic)
    with EventProducer(registry_settings, codec=codec) as producer:
        for event in events:
            producer.emit(event)
        assert producer.flush(30) == 0

    messages = read_topic(settings, settings.lifecycle_topic, len(events))
    reader = AvroCodec(client, topic=settings.lifecycle_topic)  # no schema ids cached yet
    for message in messages:
        value = message.value()
        assert value[:1] == constants.CONFLUENT_MAGIC
        event = reader.decode(value)
        version = codec.catalog.latest(event.type)
        registered = client.get_latest_version(codec.subject(version))
        assert int.from_bytes(value[1:5], "big") == registered.schema_id
    decoded = _decode_all(reader, messages)
    assert sorted(decoded, key=lambda e: e.id) == sorted(events, key=lambda e: e.id)
    with pytest.raises(UnknownSchemaError):
        AvroCodec().decode(messages[0].value())

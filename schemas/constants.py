"""Names shared by every part of Tidings: topics, record headers and id prefixes.

One home per fact: other modules import these instead of spelling the strings again.
"""

from __future__ import annotations

from typing import Final

#: Default prefix of every topic Tidings owns (configurable with ``TIDINGS_TOPIC_PREFIX``).
DEFAULT_TOPIC_PREFIX: Final = "tidings."

#: Topic suffixes; the full name is ``<prefix><suffix>``.
LIFECYCLE_TOPIC: Final = "lifecycle"
STREAMS_TOPIC: Final = "streams"
DELIVERIES_TOPIC: Final = "deliveries"
DLQ_TOPIC: Final = "dlq"
RETRY_TOPIC_PREFIX: Final = "retry."

#: Consumer group of a stream is ``<prefix>stream.<stream id>``.
STREAM_GROUP_PREFIX: Final = "stream."

#: Id prefixes (followed by 22 base62 characters, like Auth0's).
EVENT_ID_PREFIX: Final = "evt_"
STREAM_ID_PREFIX: Final = "est_"
ID_RANDOM_LENGTH: Final = 22

#: Record headers on lifecycle records, so consumers can filter without decoding.
HEADER_EVENT_TYPE: Final = "tidings-event-type"
HEADER_EVENT_ID: Final = "tidings-event-id"
HEADER_CONTENT_TYPE: Final = "content-type"

#: Record headers on retry-tier and dead-letter records.
HEADER_STREAM_ID: Final = "tidings-stream-id"
HEADER_ATTEMPT: Final = "tidings-attempt"
HEADER_DUE_AT: Final = "tidings-due-at"
HEADER_FIRST_FAILURE_AT: Final = "tidings-first-failure-at"
HEADER_LAST_FAILURE_AT: Final = "tidings-last-failure-at"
HEADER_LAST_ERROR: Final = "tidings-last-error"
HEADER_LAST_HTTP_STATUS: Final = "tidings-last-http-status"
HEADER_ORIGINAL_TOPIC: Final = "tidings-original-topic"
HEADER_ORIGINAL_PARTITION: Final = "tidings-original-partition"
HEADER_ORIGINAL_OFFSET: Final = "tidings-original-offset"
HEADER_DLQ_REASON: Final = "tidings-dlq-reason"
HEADER_PURPOSE: Final = "tidings-purpose"

#: On a registry record: the offset of the record it was based on; the record applies only
#: if that record still holds the stream's state (see dispatcher/registry_order.py).
HEADER_IF_OFFSET: Final = "tidings-if-offset"

#: Headers of a purge marker: a null-value record on the dead-letter topic that removes the
#: dead letter at ``<partition>:<offset>`` of the same topic from ``tidings dlq`` and status.
HEADER_PURGED: Final = "tidings-purged"
HEADER_PURGE_REASON: Final = "tidings-purge-reason"

#: The Avro single-object encoding marker (Avro specification, "Single-object encoding").
SINGLE_OBJECT_MAGIC: Final = b"\xc3\x01"
#: The Confluent wire format's magic byte (followed by a 4-byte big-endian schema id).
CONFLUENT_MAGIC: Final = b"\x00"

#: Lifecycle event types Tidings knows, in the order Auth0 documents them.
EVENT_TYPES: Final = (
    "user.created",
    "user.updated",
    "user.deleted",
    "organization.created",
    "organization.updated",
    "organization.deleted",
    "organization.member.added",
    "organization.member.deleted",
    "organization.member.role.assigned",
    "organization.member.role.deleted",
    "organization.connection.added",
    "organization.connection.updated",
    "organization.connection.removed",
    "organization.group.role.assigned",
    "organization.group.role.deleted",
    "group.created",
    "group.updated",
    "group.deleted",
    "group.member.added",
    "group.member.deleted",
    "group.role.assigned",
    "group.role.deleted",
)

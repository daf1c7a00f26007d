"""``tidings outbox relay``: publishes committed outbox rows to Kafka, in commit order per
subject, and deletes them once Kafka acknowledged them.

One cycle: read up to ``batch_size`` visible rows in ``seq`` order (see :mod:`producer.outbox`
for why that is commit order per subject), produce them with the idempotent producer keyed
by subject, wait for every acknowledgement, delete the acknowledged rows. A crash repeats at
most the batch in flight, with the same event ids. When the table is empty the relay waits on
``LISTEN tidings_outbox`` (woken at the writer's commit), with a slow poll as a safety net;
under load each cycle takes a full batch, so batches grow with the backlog.

Several relays may run against one database: each first waits for a session-level advisory
lock, so exactly one is active. The lock belongs to the active relay's connection; when that
process dies, even by ``kill -9``, the server sees the socket close and releases the lock, and
a standby, blocked on the same lock, takes over at once (it retries every ``lock_retry``
seconds only to notice a stop request). All work runs on that one connection, so a relay
that lost its connection (and with it the lock) cannot delete anything, and reconnects as a
standby.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import psycopg
import structlog
from confluent_kafka import KafkaError, Message, Producer

from producer.config import Settings
from producer.leadership import wait_for_lock
from producer.outbox import CHANNEL, RELAY_LOCK_KEY, RELAY_LOCK_SPACE, TABLE, OutboxError
from producer.producer import producer_config, record_headers

log = structlog.get_logger("tidings.relay")

#: The relay's connections are named ``tidings-outbox-relay:<pid>`` in pg_stat_activity, so
#: an operator (or a test) sees which process holds the lock.
APPLICATION_NAME: Final = "tidings-outbox-relay"

_SELECT: Final = (
    f"SELECT seq, topic, subject, event_type, event_id, purpose, value FROM {TABLE} "
    "ORDER BY seq LIMIT %s"
)
_DELETE: Final = f"DELETE FROM {TABLE} WHERE seq = ANY(%s)"


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One outbox row as the relay reads it: a finished Kafka record and its ``seq``."""

    seq: int
    topic: str
    subject: str
    event_type: str
    event_id: str
    purpose: str | None
    value: bytes


def deletable(rows: Sequence[OutboxRow], failed: set[int]) -> list[int]:
    """The ``seq`` of the rows a batch may delete: the acknowledged ones, except any that
    follows a failed row of the same subject (those go again, after it, to keep the
    subject's order; the repeats carry the same event ids)."""
    blocked: set[str] = set()
    done: list[int] = []
    for row in rows:  # in seq order
        if row.seq in failed:
            blocked.add(row.subject)
        elif row.subject not in blocked:
            done.append(row.seq)
    return done


class OutboxRelay:
    """The relay loop: ``run(stop)`` until ``stop`` is set, reconnecting after errors.

    ``idle_wait`` is the longest wait for a notification before an idle relay looks at the
    table anyway (a safety net), and how soon it notices a stop request."""

    def __init__(
        self,
        dsn: str,
        settings: Settings,
        *,
        batch_size: int = 2000,
        lock_retry: float = 1.0,
        idle_wait: float = 0.5,
        kafka_overrides: dict[str, Any] | None = None,
    ) -> None:
        self._dsn = dsn
        self._batch_size = batch_size
        self._lock_retry = lock_retry
        self._idle_wait = idle_wait
        # The relay waits for every batch's acknowledgements (flush), so librdkafka's linger
        # would only add latency.
        config = producer_config(settings, {"linger.ms": 1, **(kafka_overrides or {})})
        self._producer = Producer(config)
        self.published = 0
        self.active = threading.Event()

    def run(self, stop: threading.Event) -> None:
        """Be a standby until the leadership lock is ours, then relay; until ``stop``."""
        while not stop.is_set():
            try:
                with psycopg.connect(
                    self._dsn, autocommit=True, application_name=f"{APPLICATION_NAME}:{os.getpid()}"
                ) as conn:
                    if wait_for_lock(
                        conn,
                        RELAY_LOCK_SPACE,
                        RELAY_LOCK_KEY,
                        stop,
                        retry=self._lock_retry,
                        role="outbox-relay",
                    ):
                        self.active.set()
                        self._relay(conn, stop)
            except psycopg.errors.UndefinedTable as exc:
                raise OutboxError(
                    f"no {TABLE} table in this database: run `tidings outbox init --dsn …`"
                ) from exc
            except psycopg.OperationalError as exc:
                self.active.clear()
                log.warning("relay_connection_lost", error=str(exc).strip())
                stop.wait(1.0)
        self.active.clear()
        self._producer.flush(10)

    def _relay(self, conn: psycopg.Connection[Any], stop: threading.Event) -> None:
        conn.execute(f"LISTEN {CHANNEL}")
        while not stop.is_set():
            # psycopg keeps notifications that arrive during other queries (one per commit),
            # unbounded: drop them before each select, which sees those commits anyway.
            for _ in conn.notifies(timeout=0):
                pass
            rows = [OutboxRow(*r) for r in conn.execute(_SELECT, (self._batch_size,))]
            if not rows:
                # Woken by the writers' commits (notifications that arrived since the select
                # are queued: the wait returns at once); the timeout is a safety net, and
                # how often a stop request is noticed.
                for _ in conn.notifies(timeout=self._idle_wait, stop_after=1):
                    pass
                continue
            failed = self._publish(rows)
            done = deletable(rows, failed)
            if done:
                conn.execute(_DELETE, (done,))
                self.published += len(done)
            if failed:
                log.warning("relay_batch_failed", failed=len(failed), batch=len(rows))
                stop.wait(1.0)

    def _publish(self, rows: Iterable[OutboxRow]) -> set[int]:
        """Produce a batch and wait for every acknowledgement; the ``seq`` of failed rows."""
        failed: set[int] = set()

        def on_delivery(seq: int) -> Any:
            def delivered(err: KafkaError | None, _msg: Message) -> None:
                if err is not None:
                    failed.add(seq)
                    log.warning("relay_record_failed", seq=seq, error=err.str())

            return delivered

        for row in rows:
            headers = record_headers(row.event_type, row.event_id, row.purpose)
            while True:
                try:
                    self._producer.produce(
                        row.topic,
                        row.value,
                        row.subject.encode(),
                        headers=headers,
                        on_delivery=on_delivery(row.seq),
                    )
                    break
                except BufferError:
                    self._producer.poll(0.05)
        # librdkafka settles every record within message.timeout.ms; keep waiting until then.
        started = time.monotonic()
        while self._producer.flush(1.0) > 0:
            log.info("relay_waiting_for_kafka", seconds=round(time.monotonic() - started))
        return failed


def run_relay(dsn: str, settings: Settings, stop: threading.Event, **options: Any) -> int:
    """Run a relay until ``stop`` is set (the CLI sets it on SIGTERM/SIGINT)."""
    relay = OutboxRelay(dsn, settings, **options)
    relay.run(stop)
    log.info("relay_stopped", published=relay.published)
    return 0

"""A producer that keeps events flowing at a steady pace on a thread until told to stop, so
faults can strike while traffic is live."""

from __future__ import annotations

import threading
import time

from producer.config import Settings
from producer.producer import EventProducer
from schemas import constants
from schemas.samples import sample_event


class SteadyProducer:
    """Produces events on a thread at about ``per_second`` until stopped. Through a broker
    outage librdkafka keeps the records queued and retries them while the broker is away."""

    def __init__(self, settings: Settings, per_second: int) -> None:
        # Records may wait out a broker outage in the queue: give them far longer than it lasts.
        self._producer = EventProducer(settings, kafka_overrides={"message.timeout.ms": 180_000})
        self._settings = settings
        self._per_tick = max(per_second // 20, 1)
        self._stop = threading.Event()
        self.ids: list[str] = []
        self._thread = threading.Thread(target=self._run, name="steady-producer")

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            for _ in range(self._per_tick):
                event_type = constants.EVENT_TYPES[i % len(constants.EVENT_TYPES)]
                event = sample_event(event_type, tenant=self._settings.tenant, seed=i)
                self.ids.append(self._producer.emit(event))
                i += 1
            time.sleep(0.05)

    def start(self) -> None:
        """Start producing."""
        self._thread.start()

    def stop(self) -> list[str]:
        """Stop producing, wait for every acknowledgement and return the ids (blocking)."""
        self._stop.set()
        self._thread.join()
        remaining = self._producer.flush(180)
        assert remaining == 0, f"{remaining} events never acknowledged"
        assert not self._producer.failures, self._producer.failures[:3]
        self._producer.close()
        return self.ids

"""A producer that keeps events flowing at a steady pace on a thread until told to stop, so
faults can strike while traffic is live."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any, Final

from producer.config import Settings
from producer.producer import EventProducer
from schemas import constants
from schemas.samples import sample_event

#: Records may wait out a broker outage in the queue: give them far longer than it lasts.
OUTAGE_OVERRIDES: Final = {"message.timeout.ms": 180_000}


class SteadyProducer:
    """Produces events on a thread at about ``per_second`` until stopped (or until ``total``
    events). Through a broker outage librdkafka keeps the records queued and retries them
    while the broker is away. ``kafka_overrides`` replace the library's librdkafka settings."""

    def __init__(
        self,
        settings: Settings,
        per_second: int,
        total: int | None = None,
        kafka_overrides: Mapping[str, Any] = OUTAGE_OVERRIDES,
    ) -> None:
        self._producer = EventProducer(settings, kafka_overrides=kafka_overrides)
        self._settings = settings
        self._per_tick = max(per_second // 20, 1)
        self._total = total
        self._stop = threading.Event()
        self.ids: list[str] = []
        self._thread = threading.Thread(target=self._run, name="steady-producer")

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set() and i != self._total:
            tick_end = i + self._per_tick
            if self._total is not None:
                tick_end = min(tick_end, self._total)
            for seed in range(i, tick_end):
                event_type = constants.EVENT_TYPES[seed % len(constants.EVENT_TYPES)]
                event = sample_event(event_type, tenant=self._settings.tenant, seed=seed)
                self.ids.append(self._producer.emit(event))
            i = tick_end
            time.sleep(0.05)

    def start(self) -> None:
        """Start producing."""
        self._thread.start()

    def join(self, timeout: float) -> None:
        """Wait until all ``total`` events are handed to the producer (blocking)."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"{len(self.ids)} of {self._total} produced"

    def stop(self) -> list[str]:
        """Stop producing, wait for every acknowledgement and return the ids (blocking)."""
        self._stop.set()
        self._thread.join()
        remaining = self._producer.flush(180)
        assert remaining == 0, f"{remaining} events never acknowledged"
        assert not self._producer.failures, self._producer.failures[:3]
        self._producer.close()
        return self.ids

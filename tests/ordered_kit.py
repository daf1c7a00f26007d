"""Helpers for ordered-delivery tests: events of many subjects in a known order per subject,
and the checks that a receiver got each subject's events in that order."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from producer.config import Settings
from producer.producer import EventProducer
from schemas.models import LifecycleEvent, make_event
from schemas.samples import sample_context, sample_object

#: One subject's events, in the order they happen: created, updated three times, deleted.
LIFE = ("user.created", "user.updated", "user.updated", "user.updated", "user.deleted")


@dataclass(frozen=True)
class Place:
    """Where an event stands: its subject and its index among the subject's events."""

    subject: str
    index: int


def subject_name(number: int) -> str:
    """The user id of subject ``number``."""
    return f"auth0|ordered{number:06d}"


def life_event(settings: Settings, subject: str, index: int, seed: int) -> LifecycleEvent:
    """Event ``index`` of ``subject``'s life (see LIFE)."""
    event_type = LIFE[index % len(LIFE)]
    obj = {**sample_object(event_type, seed=seed), "user_id": subject}
    previous = None
    if event_type.endswith(".updated"):
        previous = {**obj, "email": "old." + str(obj["email"])}
    return make_event(event_type, obj, previous, sample_context(seed=seed), tenant=settings.tenant)


def lives(
    settings: Settings, subjects: int, per_subject: int = len(LIFE), first: int = 0
) -> list[tuple[LifecycleEvent, Place]]:
    """``per_subject`` events for each of ``subjects`` subjects, round by round (so subjects
    interleave in every partition), with each one's place."""
    return [
        (
            life_event(settings, subject_name(number), index, seed=number * 10 + index),
            Place(subject_name(number), index),
        )
        for index in range(per_subject)
        for number in range(first, first + subjects)
    ]


def places_of(events: list[tuple[LifecycleEvent, Place]]) -> dict[str, Place]:
    """Each event id's place."""
    return {event.id: place for event, place in events}


def produce(settings: Settings, events: list[tuple[LifecycleEvent, Place]]) -> None:
    """Produce the events in their order."""
    with EventProducer(settings) as producer:
        for event, _place in events:
            producer.emit(event)
        assert producer.flush(60) == 0


def overtakings(
    arrivals: Iterable[tuple[str, bool]], places: dict[str, Place], dead: set[str]
) -> list[str]:
    """Requests (event id, answered 2xx) that reached the receiver before an earlier event of
    the same subject was delivered or dead-lettered: what ordered delivery must never do,
    whatever crashes and retries happen (replays after a crash are allowed: they repeat events
    already delivered, in order)."""
    earlier_ok: dict[str, set[int]] = defaultdict(set)
    dead_index: dict[str, set[int]] = defaultdict(set)
    for event_id in dead:
        if event_id in places:
            dead_index[places[event_id].subject].add(places[event_id].index)
    found: list[str] = []
    for event_id, delivered in arrivals:
        place = places.get(event_id)
        if place is None:
            continue
        ended = earlier_ok[place.subject] | dead_index[place.subject]
        missing = [i for i in range(place.index) if i not in ended]
        if missing:
            found.append(f"{place.subject} #{place.index} arrived before #{missing}")
        if delivered:
            earlier_ok[place.subject].add(place.index)
    return found


def out_of_step(
    arrivals: Iterable[tuple[str, bool]], places: dict[str, Place], dead: set[str]
) -> list[str]:
    """Without crashes, each subject's requests go one event after another: the same event
    again (a retry) or the next one (past dead-lettered ones), never back."""
    last: dict[str, int] = {}
    skipped = {places[e].subject + f"#{places[e].index}" for e in dead if e in places}
    found: list[str] = []
    for event_id, _delivered in arrivals:
        place = places.get(event_id)
        if place is None:
            continue
        before = last.get(place.subject, -1)
        between = range(before + 1, place.index)
        if place.index < before or any(f"{place.subject}#{i}" not in skipped for i in between):
            found.append(f"{place.subject}: #{place.index} after #{before}")
        last[place.subject] = place.index
    return found

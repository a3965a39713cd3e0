"""The feeds civicflow reads, each described once in its own module."""

from __future__ import annotations

from civicflow.feeds import civil_affairs, elderly_care, health, positions, volunteer
from civicflow.spec import Entity

FEEDS: dict[str, tuple[Entity, ...]] = {
    positions.FEED: positions.ENTITIES,
    civil_affairs.FEED: civil_affairs.ENTITIES,
    elderly_care.FEED: elderly_care.ENTITIES,
    health.FEED: health.ENTITIES,
    volunteer.FEED: volunteer.ENTITIES,
}


def all_entities() -> list[Entity]:
    return [e for entities in FEEDS.values() for e in entities]


def entity(feed: str, name: str) -> Entity:
    for e in FEEDS.get(feed, ()):
        if e.name == name:
            return e
    raise KeyError(f"no entity {name!r} in feed {feed!r}")

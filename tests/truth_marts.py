"""The people marts worked out in Python from the simulator's ground truth, not from the warehouse.

``marts.elderly_coverage`` and ``marts.unreached_vulnerable`` by the rules of
shared/warehouse.md, from the register truth of each snapshot day
(``/_sim/truth?feed=civil_affairs&date=``) and the services truth
(``/_sim/truth?feed=services``), so a test can compare the marts with them row for row.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

REGISTERED = "在册"
ELDERLY_AGE = 60
VULNERABLE = frozenset({"独居老人", "高龄老人", "特困人员"})
UNREACHED_AFTER_DAYS = 90
AREAS = ("meals", "day_care", "health", "volunteer_help")  # the order of the served_* columns


@dataclass(frozen=True)
class Version:
    """One version of a registered person, valid from valid_from to valid_to (exclusive)."""

    community_code: str
    categories: tuple[str, ...]
    status: str
    gender: str
    birth_year: int
    valid_from: dt.date
    valid_to: dt.date | None = None

    def valid_on(self, day: dt.date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day < self.valid_to)

    def attributes(self) -> tuple[Any, ...]:
        return (self.community_code, self.categories, self.status, self.gender, self.birth_year)


@dataclass(frozen=True)
class Service:
    person_key: str
    service_date: dt.date
    service_area: str
    status: str  # completed / cancelled


def person_history(
    snapshots: Iterable[Mapping[str, Any]], key: Callable[[str], str]
) -> dict[str, list[Version]]:
    """Each person's versions from the register truths of successive snapshot days.

    A person whose attributes differ from their current version, or who is missing from
    the snapshot, has that version closed on the snapshot's date; one who is shown and has
    no current version gets a new one from that date. A person whose row was quarantined
    although their ID number is valid (``held``) stays as they were.
    """
    history: dict[str, list[Version]] = {}
    for facts in snapshots:
        day = dt.date.fromisoformat(facts["snapshot_date"])
        shown = {
            key(id_no): (community, tuple(kinds), status, gender, born)
            for id_no, (community, kinds, status, gender, born) in facts["register"].items()
        }
        held = {key(id_no) for id_no in facts["held"]}
        for person, versions in history.items():
            current = versions[-1]
            if (
                current.valid_to is None
                and person not in held
                and shown.get(person) != current.attributes()
            ):
                versions[-1] = Version(*current.attributes(), current.valid_from, day)
        for person, attributes in shown.items():
            versions = history.setdefault(person, [])
            if not versions or versions[-1].valid_to is not None:
                versions.append(Version(*attributes, day))
    return history


def services_from_truth(document: Mapping[str, Any], key: Callable[[str], str]) -> list[Service]:
    """The services truth as person-keyed services."""
    return [
        Service(
            key(s["id_no"]),
            dt.date.fromisoformat(s["service_date"]),
            s["service_area"],
            s["status"],
        )
        for s in document["services"]
    ]


def _month(day: dt.date) -> dt.date:
    return day.replace(day=1)


def _month_end(month: dt.date) -> dt.date:
    return month.replace(day=calendar.monthrange(month.year, month.month)[1])


def months_spanned(services: Iterable[Service]) -> list[dt.date]:
    """Every calendar month from the first service's to the last's (any status).

    warehouse.md leaves the months of elderly_coverage open; the mart shows the months the
    warehouse holds services in, this span, for every community.
    """
    dates = [s.service_date for s in services]
    month, last = _month(min(dates)), _month(max(dates))
    out = []
    while month <= last:
        out.append(month)
        month = _month_end(month) + dt.timedelta(days=1)
    return out


@dataclass(frozen=True)
class Coverage:
    street_code: str
    elderly_registered: int
    elderly_served_any: int
    served: tuple[int, ...]  # meals, day care, health, volunteer help (AREAS)
    coverage_rate: Fraction | None


def elderly_coverage(
    history: Mapping[str, list[Version]],
    services: Iterable[Service],
    communities: Mapping[str, str],
) -> dict[tuple[dt.date, str], Coverage]:
    """Per (month, community): the registered elderly at month end and who of them was served.

    ``communities`` maps every community code to its street code. Registered elderly:
    people whose version valid on the month's last day is 在册 in the community, born in
    the month's year less 60 or earlier. Served: a completed service of that kind dated in
    the month; cancelled services never count.
    """
    services = list(services)
    served: dict[tuple[dt.date, str], set[str]] = {}
    for s in services:
        if s.status == "completed":
            served.setdefault((_month(s.service_date), s.person_key), set()).add(s.service_area)
    out = {}
    for month in months_spanned(services):
        last_day = _month_end(month)
        registered: dict[str, list[str]] = {code: [] for code in communities}
        for person, versions in history.items():
            for v in versions:
                if (
                    v.valid_on(last_day)
                    and v.status == REGISTERED
                    and v.birth_year <= month.year - ELDERLY_AGE
                ):
                    registered[v.community_code].append(person)
        for community, people in registered.items():
            areas = [served.get((month, person), set()) for person in people]
            reached = sum(1 for a in areas if a)
            out[month, community] = Coverage(
                street_code=communities[community],
                elderly_registered=len(people),
                elderly_served_any=reached,
                served=tuple(sum(1 for a in areas if area in a) for area in AREAS),
                coverage_rate=Fraction(reached, len(people)) if people else None,
            )
    return out


def newest_service_date(services: Iterable[Service]) -> dt.date:
    """The newest service date in the warehouse: of any service row, whatever its status."""
    return max(s.service_date for s in services)


def unreached_vulnerable(
    history: Mapping[str, list[Version]], services: Iterable[Service]
) -> set[tuple[str, str, tuple[str, ...], dt.date | None, int | None]]:
    """The outreach list: (person_key, community_code, categories, last_service_date, days).

    People currently 在册, aged 60 or more (in the year of the newest service date), in a
    vulnerable category, whose last completed service is more than 90 days before the
    newest service date in the warehouse, or who have none.
    """
    services = list(services)
    newest = newest_service_date(services)
    last: dict[str, dt.date] = {}
    for s in services:
        if s.status == "completed" and s.service_date > last.get(s.person_key, dt.date.min):
            last[s.person_key] = s.service_date
    out = set()
    for person, versions in history.items():
        current = versions[-1]
        if (
            current.valid_to is not None
            or current.status != REGISTERED
            or current.birth_year > newest.year - ELDERLY_AGE
            or not VULNERABLE & set(current.categories)
        ):
            continue
        seen = last.get(person)
        if seen is None or (newest - seen).days > UNREACHED_AFTER_DAYS:
            days = (newest - seen).days if seen else None
            out.add((person, current.community_code, current.categories, seen, days))
    return out

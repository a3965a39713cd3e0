"""The health department's service records, with the dirt the interface warns of.

A district-year of records ending the day before ``as_of`` (about 1.5 million
at scale 1.0). Dirt at fixed rates, each record at most one kind, so the
ground truth is exact: invalid check digits, community spellings no alias list
has, ID numbers in other spellings (valid after cleaning), cancellations
days after the service, and records that changed while a client was paging
(served twice: an earlier version, then the current one).
"""

from __future__ import annotations

import bisect
import datetime as dt
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from civicflow.simulator.people import (
    Resident,
    community_spelling,
    id_spelling,
    street_spelling,
    unknown_community_spelling,
    wrong_check_digit,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
RECORDS_AT_SCALE_1 = 1_500_000
SERVICE_TYPES = ("FD_CONTRACT", "ELDER_CHECKUP", "CHRONIC_FOLLOWUP", "HOME_VISIT")
RATES = {
    "invalid_check_digit": 0.005,
    "unknown_community": 0.005,
    "id_spelling": 0.03,
    "cancelled": 0.03,
    "changed_while_paging": 0.005,
}
REJECTED = ("invalid_check_digit", "unknown_community")  # dirt a load quarantines


def _iso(t: dt.datetime) -> str:
    return t.isoformat(timespec="seconds")


@dataclass
class HealthFeed:
    """The records the health API serves, in their current state, and what they should become."""

    residents: tuple[Resident, ...]
    scale: float
    as_of: dt.date
    seed: int
    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # record_id -> current
    earlier: dict[str, dict[str, Any]] = field(default_factory=dict)  # changed while paging
    dirt: dict[str, str] = field(default_factory=dict)  # record_id -> kind of dirt
    changed: list[str] = field(default_factory=list)  # records changed by /_sim/ calls
    # The listing sorted once per state of the records (a cancel changes them), with each
    # row's time: paging a year of records must not sort the year again for every page.
    _sorted: tuple[int, list[dict[str, Any]], list[dt.datetime]] | None = field(
        default=None, init=False, repr=False
    )
    subjects: dict[str, Resident] = field(default_factory=dict)  # record_id -> who was served

    def __post_init__(self) -> None:
        rng = random.Random(f"{self.seed}:health:{self.scale}:{self.as_of}")
        count = max(50, round(RECORDS_AT_SCALE_1 * self.scale))
        end = dt.datetime.combine(self.as_of, dt.time(), SHANGHAI)
        start = end - dt.timedelta(days=365)
        centres = {}
        for i in range(count):
            person = self.residents[rng.randrange(len(self.residents))]
            street, community = person.street, person.community
            centre = centres.setdefault(
                street.code, (f"CHC{street.code[-3:]}", f"{street.aliases[0]}社区卫生服务中心")
            )
            served = start + dt.timedelta(seconds=rng.randrange(365 * 86400 - 86400))
            served = served.replace(minute=(served.minute // 15) * 15, second=0)
            record_id = f"HR{self.as_of:%Y}{i + 1:08d}"
            record = {
                "record_id": record_id,
                "id_no": person.id_no,
                "name": person.name,
                "service_type": rng.choice(SERVICE_TYPES),
                "service_time": _iso(served),
                "institution_code": centre[0],
                "institution_name": centre[1],
                "street": street_spelling(rng, street),
                "community": community_spelling(rng, community),
                "status": "completed",
                "updated_at": _iso(served + dt.timedelta(minutes=rng.randint(5, 180))),
                "details": {"systolic": rng.randint(105, 175), "diastolic": rng.randint(60, 105)},
            }
            draw = rng.random()
            kind = None
            edge = 0.0
            for name in ("invalid_check_digit", "unknown_community", "id_spelling"):
                edge += RATES[name]
                if draw < edge:
                    kind = name
                    break
            if kind == "invalid_check_digit":
                record["id_no"] = wrong_check_digit(person.id_no)
            elif kind == "unknown_community":
                record["community"] = unknown_community_spelling(community)
            elif kind == "id_spelling":
                record["id_no"] = id_spelling(rng, person.id_no)
            if kind:
                self.dirt[record_id] = kind
            if rng.random() < RATES["cancelled"]:
                later = dt.datetime.fromisoformat(record["updated_at"]) + dt.timedelta(
                    days=rng.randint(1, 10)
                )
                record["status"] = "cancelled"
                record["updated_at"] = _iso(min(later, end - dt.timedelta(seconds=1)))
            if kind is None and rng.random() < RATES["changed_while_paging"]:
                first = dict(record, status="completed")
                first["updated_at"] = _iso(
                    dt.datetime.fromisoformat(record["updated_at"]) - dt.timedelta(minutes=30)
                )
                record["updated_at"] = _iso(
                    dt.datetime.fromisoformat(record["updated_at"]) + dt.timedelta(minutes=1)
                )
                self.earlier[record_id] = first
            self.records[record_id] = record
            self.subjects[record_id] = person

    def listing(self, since: dt.datetime | None) -> list[dict[str, Any]]:
        """Records changed at or after ``since``, ordered by updated_at then record_id."""
        if self._sorted is None or self._sorted[0] != len(self.changed):
            rows = sorted(
                [*self.records.values(), *self.earlier.values()],
                key=lambda r: (dt.datetime.fromisoformat(r["updated_at"]), r["record_id"]),
            )
            times = [dt.datetime.fromisoformat(r["updated_at"]) for r in rows]
            self._sorted = (len(self.changed), rows, times)
        _, rows, times = self._sorted
        if since is None:
            return list(rows)
        return rows[bisect.bisect_left(times, since) :]  # times are in order

    def cancel(self, count: int, at: dt.datetime) -> list[str]:
        """Cancel ``count`` clean completed records, as of ``at``; returns their ids."""
        chosen = [
            rid
            for rid, r in self.records.items()
            if r["status"] == "completed" and rid not in self.dirt and rid not in self.earlier
        ][:count]
        for rid in chosen:
            self.records[rid] = dict(self.records[rid], status="cancelled", updated_at=_iso(at))
        self.changed.extend(chosen)
        return chosen

    def services(self) -> list[dict[str, Any]]:
        """The core.fact_service rows a full load makes of the records served now.

        Quarantined records are left out; a record served twice is one row, as it is now.
        """
        out = []
        for record_id, record in self.records.items():
            if self.dirt.get(record_id) in REJECTED:
                continue
            person = self.subjects[record_id]
            served = dt.datetime.fromisoformat(record["service_time"]).astimezone(SHANGHAI)
            out.append(
                {
                    "feed": "health",
                    "record_id": record_id,
                    "id_no": person.id_no,
                    "service_date": served.date().isoformat(),
                    "service_area": "health",
                    "status": record["status"],
                    "street_code": person.street.code,
                    "community_code": person.community.code,
                }
            )
        return out

    def truth(self) -> dict[str, Any]:
        """Exactly what a full load should make of the records served now."""
        rejected = REJECTED
        quarantined = Counter(kind for kind in self.dirt.values() if kind in rejected)
        loaded = [r for rid, r in self.records.items() if self.dirt.get(rid) not in quarantined]
        return {
            "served_rows": len(self.records) + len(self.earlier),
            "records": len(self.records),
            "loaded": len(loaded),
            "quarantined": dict(quarantined),
            "duplicates": len(self.earlier),
            "cancelled": sum(1 for r in loaded if r["status"] == "cancelled"),
            "id_spellings": sum(1 for kind in self.dirt.values() if kind == "id_spelling"),
            "changed": list(self.changed),
        }

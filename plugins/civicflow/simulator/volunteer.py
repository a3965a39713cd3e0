"""The volunteer platform: volunteers, activities and service hours, with their dirt.

About 50,000 volunteers, 20,000 activities and 500,000 service-hour records at
scale 1.0. A share of the volunteers are registered residents (the same ID
number as in the other feeds); some have no mainland ID number. Dirt at fixed
rates: invalid ID check digits, ID numbers in other spellings, organisers'
credit codes with a wrong check character, activities given by venue address
instead of position code, cancelled activities, revoked hours.
"""

from __future__ import annotations

import bisect
import datetime as dt
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from civicflow.domain import VOLUNTEER_CATEGORIES
from civicflow.simulator.people import (
    Resident,
    community_spelling,
    id_spelling,
    make_id,
    street_spelling,
    wrong_check_digit,
)
from civicflow.simulator.world import District, Position, position_address

SHANGHAI = ZoneInfo("Asia/Shanghai")
AT_SCALE_1 = {"volunteers": 50_000, "activities": 20_000, "service-hours": 500_000}
CATEGORIES = VOLUNTEER_CATEGORIES
RATES = {
    "invalid_check_digit": 0.005,
    "id_spelling": 0.03,
    "no_id": 0.05,
    "resident": 0.2,
    "invalid_uscc": 0.01,
    "by_address": 0.3,
    "cancelled": 0.03,
    "revoked": 0.02,
    "hours_out_of_range": 0.005,
}
ORGANISERS = ("越秀区志愿者协会", "街道党工委", "社区居委会", "区青年志愿者服务队", "区社工服务站")
_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def _local(t: dt.datetime) -> str:
    return t.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


def _iso(t: dt.datetime) -> str:
    return t.isoformat(timespec="seconds")


def make_uscc(rng: random.Random) -> str:
    from stdnum.cn import uscc

    first17 = "91440104" + "".join(rng.choice(_USCC_ALPHABET[:10]) for _ in range(9))
    return first17 + uscc.calc_check_digit(first17)


@dataclass
class VolunteerFeed:
    district: District
    residents: tuple[Resident, ...]
    scale: float
    as_of: dt.date
    seed: int
    items: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # entity -> records
    dirt: dict[str, Counter] = field(default_factory=dict)  # entity -> kind -> count
    revoked_later: list[str] = field(default_factory=list)
    # Each listing sorted once per state of the records (a revoke changes them), with each
    # row's time: paging a year of hours must not sort the year again for every page.
    _sorted: dict[str, tuple[int, list[dict[str, Any]], list[dt.datetime]]] = field(
        default_factory=dict, init=False, repr=False
    )
    venues: dict[str, Position] = field(default_factory=dict)  # activity_id -> where it was held

    def __post_init__(self) -> None:
        rng = random.Random(f"{self.seed}:volunteer:{self.scale}:{self.as_of}")
        end = dt.datetime.combine(self.as_of, dt.time(), SHANGHAI)
        start = end - dt.timedelta(days=365)
        count = {k: max(20, round(v * self.scale)) for k, v in AT_SCALE_1.items()}
        self.dirt = {k: Counter() for k in AT_SCALE_1}
        communities = [(s, c) for s in self.district.streets for c in s.communities]

        volunteers = []
        clean_volunteers: list[bool] = []
        for i in range(count["volunteers"]):
            registered = start - dt.timedelta(days=rng.randrange(3 * 365))
            kind = None
            if rng.random() < RATES["resident"]:
                person = self.residents[rng.randrange(len(self.residents))]
                id_no, name, gender = person.id_no, person.name, person.gender
                birth, street, community = person.birth_date, person.street, person.community
            else:
                street, community = communities[rng.randrange(len(communities))]
                birth = dt.date(rng.randint(1950, 2006), 1, 1) + dt.timedelta(
                    days=rng.randrange(365)
                )
                male = rng.random() < 0.45
                sequence = rng.randrange(500, 999)
                if (sequence % 2 == 1) != male:
                    sequence += 1
                id_no = make_id(self.district.code, birth, sequence)
                name = (
                    rng.choice("陈李黄林何梁") + rng.choice("晓小嘉子思") + rng.choice("明华婷欣")
                )
                gender = "男" if male else "女"
            draw = rng.random()
            # Every kind of dirt shows at least once, however small the scale.
            draw = {
                3: 0.0,
                5: RATES["no_id"],
                8: RATES["no_id"] + RATES["invalid_check_digit"],
            }.get(i, draw)
            if draw < RATES["no_id"]:
                id_no, kind = None, "no_id"
            elif draw < RATES["no_id"] + RATES["invalid_check_digit"]:
                id_no, kind = wrong_check_digit(id_no), "invalid_check_digit"
            elif draw < RATES["no_id"] + RATES["invalid_check_digit"] + RATES["id_spelling"]:
                id_no, kind = id_spelling(rng, id_no), "id_spelling"
            if kind:
                self.dirt["volunteers"][kind] += 1
            clean_volunteers.append(kind != "invalid_check_digit")
            volunteers.append(
                {
                    "volunteer_id": f"V{i + 1:07d}",
                    "id_no": id_no,
                    "name": name,
                    "gender": gender,
                    "birth_date": birth.isoformat(),
                    "phone": f"13{rng.randrange(10**9):09d}",
                    "street": street_spelling(rng, street),
                    "community": community_spelling(rng, community),
                    "is_party_member": rng.random() < 0.35,
                    "registered_at": _iso(registered),
                    "updated_at": _iso(registered + dt.timedelta(hours=rng.randint(1, 72))),
                }
            )

        open_positions = [p for p in self.district.positions if p.status == "open"]
        activities = []
        rejected_activities: set[int] = set()
        for i in range(count["activities"]):
            position = open_positions[rng.randrange(len(open_positions))]
            begins = start + dt.timedelta(days=rng.randrange(364), hours=rng.choice((9, 14, 19)))
            category = rng.choice(CATEGORIES)
            uscc = make_uscc(rng)
            if rng.random() < RATES["invalid_uscc"] or i == 4:
                uscc = uscc[:17] + ("0" if uscc[17] != "0" else "1")
                self.dirt["activities"]["invalid_uscc"] += 1
                rejected_activities.add(i)
            by_address = rng.random() < RATES["by_address"] or i == 2
            if by_address:
                self.dirt["activities"]["by_address"] += 1
            status = "finished" if begins < end - dt.timedelta(days=1) else "published"
            if rng.random() < RATES["cancelled"] or i == 6:
                status = "cancelled"
                self.dirt["activities"]["cancelled"] += 1
            self.venues[f"A{i + 1:07d}"] = position
            activities.append(
                {
                    "activity_id": f"A{i + 1:07d}",
                    "title": f"{position.name}{category}活动",
                    "category": category,
                    "position_code": None if by_address else position.position_code,
                    "venue_address": position_address(self.district, position),
                    "start_time": _local(begins),
                    "end_time": _local(begins + dt.timedelta(hours=rng.choice((1, 2, 3)))),
                    "organizer_name": rng.choice(ORGANISERS),
                    "organizer_uscc": uscc,
                    "status": status,
                    "updated_at": _iso(begins - dt.timedelta(days=rng.randint(1, 14))),
                }
            )

        # Hours are recorded for activities and volunteers the warehouse can know, so
        # their quarantine comes from their own dirt only.
        held = [
            a
            for i, a in enumerate(activities)
            if a["status"] != "cancelled" and i not in rejected_activities
        ]
        helpers = [v for v, ok in zip(volunteers, clean_volunteers, strict=True) if ok]
        hours = []
        for i in range(count["service-hours"]):
            activity = held[rng.randrange(len(held))]
            volunteer = helpers[rng.randrange(len(helpers))]
            finished = dt.datetime.strptime(activity["end_time"], "%Y-%m-%d %H:%M:%S").replace(
                tzinfo=SHANGHAI
            )
            beneficiary = None
            if activity["category"] == "助老服务":
                beneficiary = self.residents[rng.randrange(len(self.residents))].id_no
                self.dirt["service-hours"]["beneficiary"] += 1
            amount = f"{rng.choice((1, 1.5, 2, 2.5, 3, 4))}"
            if rng.random() < RATES["hours_out_of_range"] or i == 9:
                amount = "25"
                self.dirt["service-hours"]["hours_out_of_range"] += 1
            status = "confirmed"
            if rng.random() < RATES["revoked"]:
                status = "revoked"
                self.dirt["service-hours"]["revoked"] += 1
            hours.append(
                {
                    "record_id": f"H{i + 1:08d}",
                    "activity_id": activity["activity_id"],
                    "volunteer_id": volunteer["volunteer_id"],
                    "hours": amount,
                    "beneficiary_id_no": beneficiary,
                    "status": status,
                    "updated_at": _iso(min(finished + dt.timedelta(hours=rng.randint(1, 48)), end)),
                }
            )
        self.items = {"volunteers": volunteers, "activities": activities, "service-hours": hours}

    def listing(self, entity: str, since: dt.datetime | None) -> list[dict[str, Any]]:
        cached = self._sorted.get(entity)
        if cached is None or cached[0] != len(self.revoked_later):
            rows = sorted(
                self.items[entity], key=lambda r: (r["updated_at"], next(iter(r.values())))
            )
            times = [dt.datetime.fromisoformat(r["updated_at"]) for r in rows]
            cached = self._sorted[entity] = (len(self.revoked_later), rows, times)
        _, rows, times = cached
        if since is None:
            return list(rows)
        return rows[bisect.bisect_left(times, since) :]  # times are in order

    def revoke(self, count: int, at: dt.datetime) -> list[str]:
        """Revoke ``count`` confirmed service-hour records as of ``at``."""
        chosen = []
        for i, r in enumerate(self.items["service-hours"]):
            if len(chosen) == count:
                break
            if r["status"] == "confirmed" and r["hours"] != "25":
                self.items["service-hours"][i] = dict(r, status="revoked", updated_at=_iso(at))
                chosen.append(r["record_id"])
        self.revoked_later.extend(chosen)
        return chosen

    def services(self) -> list[dict[str, Any]]:
        """The core.fact_service rows (volunteer_help) a full load makes of the hours served now.

        One per service-hour record naming a beneficiary, dated and placed by its activity;
        hours out of range are quarantined, revoked hours are cancelled services.
        """
        activities = {a["activity_id"]: a for a in self.items["activities"]}
        out = []
        for record in self.items["service-hours"]:
            if not record["beneficiary_id_no"] or record["hours"] == "25":
                continue
            activity = activities[record["activity_id"]]
            venue = self.venues[record["activity_id"]]
            out.append(
                {
                    "feed": "volunteer",
                    "record_id": record["record_id"],
                    "id_no": record["beneficiary_id_no"],
                    "service_date": activity["start_time"][:10],  # local time, Asia/Shanghai
                    "service_area": "volunteer_help",
                    "status": "cancelled" if record["status"] == "revoked" else "completed",
                    "street_code": venue.street.code if venue.street else None,
                    "community_code": venue.community.code if venue.community else None,
                }
            )
        return out

    def truth(self) -> dict[str, Any]:
        vols = self.dirt["volunteers"]
        acts = self.dirt["activities"]
        hrs = self.items["service-hours"]
        bad = self.dirt["service-hours"]["hours_out_of_range"]
        helped = [r for r in hrs if r["beneficiary_id_no"]]
        helped_bad = sum(1 for r in helped if r["hours"] == "25")
        return {
            "volunteers": {
                "served_rows": len(self.items["volunteers"]),
                "quarantined": {"invalid_check_digit": vols["invalid_check_digit"]},
                "loaded": len(self.items["volunteers"]) - vols["invalid_check_digit"],
                "without_id": vols["no_id"],
            },
            "activities": {
                "served_rows": len(self.items["activities"]),
                "quarantined": {"invalid_uscc": acts["invalid_uscc"]},
                "loaded": len(self.items["activities"]) - acts["invalid_uscc"],
                "by_address": acts["by_address"],
                "cancelled": acts["cancelled"],
            },
            "service-hours": {
                "served_rows": len(hrs),
                "quarantined": {"hours_out_of_range": bad},
                "loaded": len(hrs) - bad,
                "revoked": sum(1 for r in hrs if r["status"] == "revoked" and r["hours"] != "25"),
                "revoked_later": list(self.revoked_later),
            },
            "volunteer_help": {
                "served_rows": len(helped),
                "quarantined": {"hours_out_of_range": helped_bad},
                "loaded": len(helped) - helped_bad,
            },
        }

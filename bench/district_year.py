"""A district-year written straight into core with COPY, for timing the marts on real volumes.

Deterministic for a seed (with the pinned numpy). ``scale`` 1.0 is a district-year as domain.md
sizes it: a register of about 300,000 people with their history (about 400,000 versions,
changing on monthly snapshots taken on any day of the month), 1.5 million health records,
2.5 million canteen meals, 300,000 day-care visits, 50,000 volunteers, 20,000 activities,
500,000 service-hour records, and a daily tally for each of the 254 positions. Streets,
communities and positions are the simulator's Yuexiu-shaped district at every scale; the
people and their records scale. Nothing goes through the feeds: this measures the marts.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from dataclasses import dataclass

import numpy as np
import psycopg

from civicflow.domain import VOLUNTEER_CATEGORIES
from civicflow.simulator.people import CATEGORIES
from civicflow.simulator.world import build_district

HEALTH_TYPES = ("FD_CONTRACT", "ELDER_CHECKUP", "CHRONIC_FOLLOWUP", "HOME_VISIT")
MEAL_TYPES = ("lunch_eat_in", "lunch_delivered", "dinner_eat_in", "breakfast_eat_in")
DAY_CARE_TYPES = ("day_care", "rehabilitation", "recreation")
# Hosting weight of a position, by level: the district and street centres hold most activities.
ACTIVITY_WEIGHT = {"district": 20.0, "street": 6.0, "community": 1.0, "public_space": 2.0}
VISITORS = {"district": 60, "street": 40, "community": 15, "public_space": 120}


@dataclass(frozen=True)
class Volumes:
    """Rows of a district-year at ``scale`` (1.0: domain.md's figures)."""

    people: int  # registered in the target groups
    other_residents: int  # residents outside the register, seen only by health
    health: int
    meals: int
    day_care: int
    volunteer_help: int
    volunteers: int
    activities: int
    hours: int

    @classmethod
    def at(cls, scale: float) -> Volumes:
        def n(count: int) -> int:
            return max(20, round(count * scale))

        return cls(
            people=n(300_000),
            other_residents=n(200_000),
            health=n(1_500_000),
            meals=n(2_500_000),
            day_care=n(300_000),
            volunteer_help=n(50_000),
            volunteers=n(50_000),
            activities=n(20_000),
            hours=n(500_000),
        )


def _keys(seed: int, kind: str, count: int) -> list[str]:
    """Person keys: 64 hex characters, as the HMAC gives them, distinct per kind and number."""
    return [hashlib.sha256(f"{seed}:{kind}:{i}".encode()).hexdigest() for i in range(count)]


def _array(values: list[str]) -> str:
    """A text[] in COPY's text form (the values are plain Chinese words)."""
    return "{" + ",".join(values) + "}"


class _Writer:
    """COPY rows into one core table, counting them."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self.rows: dict[str, int] = {}

    def copy(self, table: str, columns: tuple[str, ...], rows) -> None:
        statement = f"copy core.{table} ({', '.join(columns)}) from stdin"
        count = 0
        with self.conn.cursor() as cur, cur.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
                count += 1
        self.rows[f"core.{table}"] = self.rows.get(f"core.{table}", 0) + count


def generate(
    conn: psycopg.Connection, scale: float = 1.0, seed: int = 20261127, year: int = 2025
) -> dict[str, int]:
    """Write a district-year into the empty core tables of ``conn``; returns rows per table.

    Runs in one transaction, ``conn`` in autocommit mode.
    """
    rng = np.random.default_rng(seed)
    vol = Volumes.at(scale)
    load = str(uuid.UUID(int=seed))
    district = build_district(seed=seed)
    streets = district.streets
    communities = district.communities
    positions = district.positions
    jan1 = dt.date(year, 1, 1)
    days = (dt.date(year + 1, 1, 1) - jan1).days
    day_text = [(jan1 + dt.timedelta(d)).isoformat() for d in range(days)]
    out = _Writer(conn)

    with conn.transaction():
        # --- the service network ---------------------------------------------------------
        out.copy(
            "dim_street",
            ("street_code", "street_name", "aliases", "district_code", "load_id"),
            ((s.code, s.name, _array(s.aliases), district.code, load) for s in streets),
        )
        street_of = {c.code: s.code for s in streets for c in s.communities}
        out.copy(
            "dim_community",
            ("community_code", "community_name", "street_code", "longitude", "latitude",
             "aliases", "load_id"),
            ((c.code, c.name, street_of[c.code], c.longitude, c.latitude, _array(c.aliases),
              load) for c in communities),
        )  # fmt: skip
        out.copy(
            "dim_position",
            ("position_code", "position_name", "level", "street_code", "community_code",
             "longitude", "latitude", "services", "rooms", "integrated_platforms",
             "opening_hours", "opened_on", "status", "load_id"),
            ((p.position_code, p.name, p.level, p.street.code if p.street else None,
              p.community.code if p.community else None, p.longitude, p.latitude,
              _array(p.services), _array(p.rooms), _array(p.integrated_platforms),
              p.opening_hours, p.opened_on, p.status, load) for p in positions),
        )  # fmt: skip
        out.copy(
            "fact_position_day",
            ("position_code", "visit_date", "visitors", "activities_held", "participants",
             "load_id"),
            _position_days(rng, positions, jan1, days, day_text, load),
        )  # fmt: skip

        # --- the register: people and their history --------------------------------------
        n_people = vol.people
        community_weight = rng.lognormal(0.0, 0.5, len(communities))
        community_weight /= community_weight.sum()
        home = rng.choice(len(communities), n_people, p=community_weight)
        elderly = rng.random(n_people) < 0.88
        age = np.where(
            elderly,
            np.minimum(60 + rng.exponential(11.0, n_people).astype(int), 105),
            rng.integers(18, 60, n_people),
        )
        birth_year = year - age
        people = _keys(seed, "resident", n_people)
        station = {
            p.community.code: p.position_code
            for p in positions
            if p.community and p.status == "open"
        }
        community_codes = [c.code for c in communities]
        out.copy(
            "dim_person",
            ("person_key", "gender", "birth_year", "street_code", "community_code",
             "categories", "registry_status", "valid_from", "valid_to", "is_current",
             "source_updated_at", "load_id", "closed_by_load_id"),
            _person_history(rng, people, home, birth_year, elderly, community_codes,
                            street_of, year, load),
        )  # fmt: skip

        # --- volunteers, activities, hours -------------------------------------------------
        volunteer_ids = [f"V{seed % 1000:03d}{i:07d}" for i in range(vol.volunteers)]
        volunteer_keys = _keys(seed, "volunteer", vol.volunteers)
        has_key = rng.random(vol.volunteers) < 0.85
        v_home = rng.choice(len(communities), vol.volunteers, p=community_weight)
        registered = rng.integers(-5 * 365, days, vol.volunteers)
        out.copy(
            "dim_volunteer",
            ("volunteer_id", "volunteer_key", "gender", "birth_year", "street_code",
             "community_code", "is_party_member", "registered_at", "load_id"),
            ((volunteer_ids[i], volunteer_keys[i] if has_key[i] else None,
              "F" if g else "M", int(b), street_of[community_codes[c]], community_codes[c],
              bool(party), f"{jan1 + dt.timedelta(int(r))} 10:00:00+08", load)
             for i, (g, b, c, party, r) in enumerate(zip(
                 rng.random(vol.volunteers) < 0.6, rng.integers(1950, 2007, vol.volunteers),
                 v_home, rng.random(vol.volunteers) < 0.28, registered, strict=True)))
        )  # fmt: skip

        n_act = vol.activities
        host_weight = np.array([ACTIVITY_WEIGHT[p.level] * (p.status == "open") for p in positions])
        host = rng.choice(len(positions), n_act, p=host_weight / host_weight.sum())
        at_position = rng.random(n_act) < 0.92  # else a venue that is no position
        elsewhere = rng.integers(0, len(streets), n_act)
        act_street = [
            positions[h].street.code if at else streets[e].code
            for h, at, e in zip(host, at_position, elsewhere, strict=True)
        ]
        act_position = [
            positions[h].position_code if at else None
            for h, at in zip(host, at_position, strict=True)
        ]
        act_community = [
            positions[h].community.code if at and positions[h].community else None
            for h, at in zip(host, at_position, strict=True)
        ]
        act_day = rng.integers(0, days, n_act)
        act_hour = rng.integers(8, 20, n_act)
        act_status = rng.choice(
            np.array(["finished", "published", "cancelled"]), n_act, p=[0.9, 0.05, 0.05]
        )
        act_category = rng.integers(0, len(VOLUNTEER_CATEGORIES), n_act)
        activity_ids = [f"A{seed % 1000:03d}{i:07d}" for i in range(n_act)]

        def local(day: int, hour: int) -> str:
            return f"{day_text[day]} {hour:02d}:00:00+08"

        out.copy(
            "fact_activity",
            ("activity_id", "source_feed", "title", "category", "position_code",
             "street_code", "community_code", "start_at", "end_at", "status", "load_id"),
            ((activity_ids[i], "volunteer", f"{VOLUNTEER_CATEGORIES[k]}活动",
              VOLUNTEER_CATEGORIES[k], act_position[i], act_street[i],
              act_community[i],
              local(d, h), local(d, min(h + 2, 23)), act_status[i], load)
             for i, (k, d, h) in enumerate(zip(act_category, act_day, act_hour, strict=True)))
        )  # fmt: skip

        size = rng.gamma(2.0, 1.0, n_act)
        record_activity = rng.choice(n_act, vol.hours, p=size / size.sum())
        zeal = rng.pareto(1.5, vol.volunteers) + 1  # a few volunteers serve very often
        record_volunteer = rng.choice(vol.volunteers, vol.hours, p=zeal / zeal.sum())
        record_hours = rng.choice(np.array([1, 1.5, 2, 2.5, 3, 4]), vol.hours)
        revoked = rng.random(vol.hours) < 0.03
        order = np.argsort(act_day[record_activity], kind="stable").tolist()
        record_activity, record_volunteer = record_activity.tolist(), record_volunteer.tolist()
        record_hours, revoked = record_hours.tolist(), revoked.tolist()
        day_of_activity, has_key = act_day.tolist(), has_key.tolist()
        out.copy(
            "fact_volunteer_hours",
            ("record_id", "activity_id", "volunteer_id", "volunteer_key", "position_code",
             "street_code", "service_date", "hours", "status", "load_id"),
            ((f"R{seed % 1000:03d}{i:08d}", activity_ids[a], volunteer_ids[v],
              volunteer_keys[v] if has_key[v] else None, act_position[a], act_street[a],
              day_text[day_of_activity[a]], record_hours[i],
              "revoked" if revoked[i] else "confirmed", load)
             for i, a, v in ((i, record_activity[i], record_volunteer[i]) for i in order))
        )  # fmt: skip

        # --- services delivered to people ------------------------------------------------
        others = _keys(seed, "resident-outside-register", vol.other_residents)
        other_home = rng.choice(len(communities), vol.other_residents, p=community_weight)
        services = _services(rng, vol, elderly, home, other_home, days, n_act, act_day)
        s_order = np.argsort(services["day"], kind="stable")  # loads arrive in date order
        feeds = ("health", "elderly_care", "elderly_care", "volunteer")
        areas = ("health", "meals", "day_care", "volunteer_help")
        types = (HEALTH_TYPES, MEAL_TYPES, DAY_CARE_TYPES, VOLUNTEER_CATEGORIES)
        units = ("service", "meal", "hour", "hour")

        def service_rows():
            s = {name: values.tolist() for name, values in services.items()}
            area, person, outside, day = s["area"], s["person"], s["outside"], s["day"]
            kind, at_station, cancelled = s["kind"], s["at_station"], s["cancelled"]
            amount, minute, quantity = s["amount"], s["minute"], s["quantity"]
            activity = s["activity"]
            for n, i in enumerate(s_order.tolist()):
                a = area[i]
                if outside[i]:
                    key, c = others[person[i]], community_codes[other_home[person[i]]]
                else:
                    key, c = people[person[i]], community_codes[home[person[i]]]
                street = street_of[c]
                if a == 3:  # volunteer help: at the activity's place
                    position = act_position[activity[i]]
                    street = act_street[activity[i]]
                    c = act_community[activity[i]]
                else:
                    position = station.get(c) if at_station[i] else None
                d = day_text[day[i]]
                at = f"{d} {minute[i] // 60:02d}:{minute[i] % 60:02d}:00+08"
                record = f"{seed % 1000:03d}{n:09d}"
                month = d[:7]
                yield (
                    f"{feeds[a]}:{record}", feeds[a], record, key, areas[a],
                    types[a][kind[i] % len(types[a])], position, c, street, d, at,
                    quantity[i], units[a], amount[i] if a == 1 else None,
                    "cancelled" if cancelled[i] else "completed",
                    f"CHC{street}" if a == 0 else None, at, load,
                    f"{month}:{street}" if a in (1, 2) else None, 1 if a in (1, 2) else None,
                )  # fmt: skip

        out.copy(
            "fact_service",
            ("service_id", "source_feed", "source_record_id", "person_key", "service_area",
             "service_type", "position_code", "community_code", "street_code", "service_date",
             "service_time", "quantity", "unit", "amount_yuan", "status", "provider_code",
             "source_updated_at", "load_id", "source_batch", "source_version"),
            service_rows(),
        )  # fmt: skip
    return out.rows


def _position_days(rng, positions, jan1: dt.date, days: int, day_text: list[str], load: str):
    weekend = np.array([(jan1 + dt.timedelta(d)).weekday() >= 5 for d in range(days)])
    for p in positions:
        if p.status != "open":
            continue
        first = max(0, (p.opened_on - jan1).days)
        base = VISITORS[p.level] * np.where(weekend & (p.level == "public_space"), 2.5, 1.0)
        visitors = np.maximum(0, rng.normal(base, base / 4)).astype(int)
        most = 5 if p.level in ("district", "street") else 2
        activities = rng.integers(0, most + 1, days)
        participants = rng.binomial(activities * 30, 0.55)
        for d in range(first, days):
            yield (p.position_code, day_text[d], int(visitors[d]), int(activities[d]),
                   int(participants[d]), load)  # fmt: skip


def _person_history(rng, people, home, birth_year, elderly, community_codes, street_of,
                    year: int, load: str):  # fmt: skip
    """Each person's versions, as the register's monthly snapshots would have recorded them.

    Most people were registered before the year; one in eight enters during it. During the
    year some move community, change target groups, die, move away, or vanish from the
    register (their version closes without a new one); some had an older version before.
    """
    n = len(people)
    entered = np.where(
        rng.random(n) < 0.125,
        rng.integers(1, 12, n),  # entered at the snapshot of month 2..12 (0-based 1..11)
        -rng.integers(1, 48, n),  # registered up to four years before
    )
    earlier = rng.random(n) < 0.2  # had an older version before the year
    change = rng.random(n)
    change_month = rng.integers(1, 12, n)
    end = rng.random(n)
    end_month = rng.integers(1, 12, n)
    category_draws = rng.random((n, len(CATEGORIES)))
    new_home = rng.integers(0, len(community_codes), n)

    # The day of the month each snapshot was taken: not always the 1st, so versions also
    # change in the middle of a month.
    snapshot_day = rng.integers(1, 29, 12 * 7)

    def snapshot(m: int) -> dt.date:  # the snapshot m months after January (may be < 0)
        y, mm = divmod(12 * year + m, 12)
        return dt.date(y, mm + 1, int(snapshot_day[m + 12 * 6]))

    def categories(i: int, old: bool) -> str:
        r = category_draws[i]
        found = []
        if year - birth_year[i] >= 80:
            found.append("高龄老人")
        if elderly[i] and r[1] < (0.32 if old else 0.18):
            found.append("独居老人")
        if elderly[i] and r[2] < 0.25:
            found.append("空巢老人")
        if r[3] < (0.04 if elderly[i] else 0.5):
            found.append("低保对象")
        if r[4] < 0.015:
            found.append("特困人员")
        if r[5] < (0.06 if elderly[i] else 0.7):
            found.append("残疾人")
        if r[6] < 0.02:
            found.append("优抚对象")
        return _array([c for c in CATEGORIES if c in found])

    for i in range(n):
        key = people[i]
        gender = "F" if category_draws[i, 0] < 0.55 else "M"
        c = community_codes[home[i]]
        cats = categories(i, old=False)
        versions = []  # (valid_from, community, categories, status)
        if earlier[i] and entered[i] < 0:
            older = community_codes[new_home[i]]
            versions.append((snapshot(int(entered[i]) - 24), older, cats, "在册"))
        versions.append((snapshot(int(entered[i])), c, cats, "在册"))
        closed_at = None
        last = int(max(entered[i], 0))
        if change[i] < 0.07 and change_month[i] > last:  # moves
            versions.append((snapshot(int(change_month[i])), community_codes[new_home[i]],
                             cats, "在册"))  # fmt: skip
            last = int(change_month[i])
        elif change[i] < 0.15 and change_month[i] > last:  # target groups change
            versions.append((snapshot(int(change_month[i])), c, categories(i, True), "在册"))
            last = int(change_month[i])
        if end_month[i] > last:
            status = None
            old_age = year - birth_year[i] >= 80
            if end[i] < (0.06 if old_age else 0.015):
                status = "死亡"
            elif end[i] < (0.075 if old_age else 0.03):
                status = "迁出"
            elif end[i] < (0.082 if old_age else 0.037):
                closed_at = snapshot(int(end_month[i]))  # gone from the register
            if status:
                _, community, cats_now, _ = versions[-1]
                versions.append((snapshot(int(end_month[i])), community, cats_now, status))
        for v, (valid_from, community, cats_now, status) in enumerate(versions):
            valid_to = versions[v + 1][0] if v + 1 < len(versions) else closed_at
            yield (key, gender, int(birth_year[i]), street_of[community], community, cats_now,
                   status, valid_from, valid_to, valid_to is None, f"{valid_from} 08:00:00+08",
                   load, load if valid_to else None)  # fmt: skip


def _services(rng, vol: Volumes, elderly, home, other_home, days: int, n_act: int, act_day):
    """Who was served, when and how: arrays with one entry per service row (unordered).

    Canteen meals and day care go to small groups of elderly regulars; health records to
    most of the register and to residents outside it; volunteer help to elderly people, on
    the day of a volunteer activity.
    """
    n_people = len(home)
    elderly_idx = np.flatnonzero(elderly)

    def regulars(share: float, count: int, shape: float) -> np.ndarray:
        chosen = rng.choice(elderly_idx, max(1, int(len(elderly_idx) * share)), replace=False)
        weight = rng.gamma(shape, 1.0, len(chosen))
        return rng.choice(chosen, count, p=weight / weight.sum())

    in_register = int(vol.health * 0.6)
    health_people = rng.choice(n_people, in_register)
    health_outside = rng.choice(len(other_home), vol.health - in_register)
    meals = regulars(0.12, vol.meals, 3.0)
    day_care = regulars(0.015, vol.day_care, 3.0)
    help_people = regulars(0.08, vol.volunteer_help, 1.0)
    help_activity = rng.integers(0, n_act, vol.volunteer_help)

    area = np.concatenate(
        [
            np.zeros(vol.health, np.int8),
            np.full(vol.meals, 1, np.int8),
            np.full(vol.day_care, 2, np.int8),
            np.full(vol.volunteer_help, 3, np.int8),
        ]
    )
    total = len(area)
    outside = np.zeros(total, bool)
    outside[in_register : vol.health] = True
    person = np.concatenate([health_people, health_outside, meals, day_care, help_people])
    activity = np.zeros(total, np.int64)
    activity[-vol.volunteer_help :] = help_activity
    day = rng.integers(0, days, total)
    day[-vol.volunteer_help :] = act_day[help_activity]
    minute = rng.integers(8 * 60, 19 * 60, total)
    at_station = rng.random(total) < np.choose(area, [0.3, 0.7, 0.6, 1.0])
    cancelled = rng.random(total) < np.choose(area, [0.02, 0.01, 0.015, 0.02])
    quantity = np.where(area >= 2, rng.choice(np.array([1, 1.5, 2, 3]), total), 1)
    amount = rng.integers(16, 41, total) / 2  # 8 to 20 yuan
    kind = rng.integers(0, 1000, total)
    return {
        "area": area, "person": person, "outside": outside, "day": day, "minute": minute,
        "at_station": at_station, "cancelled": cancelled, "quantity": quantity,
        "amount": amount, "kind": kind, "activity": activity,
    }  # fmt: skip

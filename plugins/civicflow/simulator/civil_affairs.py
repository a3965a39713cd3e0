"""The civil-affairs register: a full CSV snapshot a day, with the dirt the interface warns of.

The register starts as the district's residents (``people.residents``), less a
reserve registered later, and changes every day: people register, move to
another community, gain or lose a category, move away or die (their status
changes), and leave the register (they are missing from later snapshots).
The exports index lists the snapshots of the ``SNAPSHOT_DAYS`` days before
``as_of``.

Dirt, so the ground truth is exact:

- per person, every day: an invalid check digit, or a community spelling no
  alias list has (both quarantined; such people never reach the history);
- per record, at random: ID numbers in other spellings (full width, lowercase
  ``x``, spaces, the 15-digit form), the three birth-date forms, both category
  separators, three phone forms, addresses that need RFC 4180 quoting. A record
  is spelled the same in every snapshot until it changes (its 更新时间 moves),
  as a department's system exports what it stores;
- per file: a few people twice, the second row an older version with other
  categories and an earlier 更新时间 (the latest wins), and one person whose
  row that day alone has an unknown community spelling (quarantined, but their
  registration continues);
- on demand (``corrupt``): a file whose bytes no longer match the index.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import random
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any
from zoneinfo import ZoneInfo

from civicflow.simulator.people import (
    CATEGORIES,
    Resident,
    community_spelling,
    id_spelling,
    street_spelling,
    unknown_community_spelling,
    wrong_check_digit,
)
from civicflow.simulator.world import Community, District, Street

SHANGHAI = ZoneInfo("Asia/Shanghai")
SNAPSHOT_DAYS = 7
HEADER = (
    "身份证号",
    "姓名",
    "性别",
    "出生日期",
    "街道",
    "社区",
    "居住地址",
    "联系电话",
    "人员类别",
    "登记状态",
    "更新时间",
)
PERSON_DIRT = {"invalid_check_digit": 0.003, "unknown_community": 0.003}
ROW_DIRT = {"id_spelling": 0.03, "duplicate": 0.005}
DAILY = {"registered": 0.002, "moved": 0.002, "categories": 0.003, "status": 0.001, "left": 0.001}
RESERVE = 0.02  # share of residents not yet registered on the first day


@dataclass(frozen=True)
class Entry:
    """One person as the register holds them on a day."""

    resident: Resident
    street: Street
    community: Community
    categories: tuple[str, ...]
    status: str  # 在册 / 迁出 / 死亡
    updated_at: dt.datetime


def _snapshot_name(day: dt.date) -> str:
    return f"residents_{day:%Y%m%d}.csv"


@dataclass
class CivilAffairsFeed:
    district: District
    residents: tuple[Resident, ...]
    scale: float
    as_of: dt.date
    seed: int
    corrupt_files: set[str] = field(default_factory=set)
    _registers: dict[dt.date, dict[str, Entry]] = field(default_factory=dict)
    _files: dict[dt.date, tuple[bytes, dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.days = [self.as_of - dt.timedelta(days=n) for n in range(SNAPSHOT_DAYS, 0, -1)]
        rng = random.Random(f"{self.seed}:civil_affairs:{self.scale}")
        reserve = max(SNAPSHOT_DAYS, round(len(self.residents) * RESERVE))
        self.reserve = list(self.residents[-reserve:])
        first = self.days[0]
        self.dirt: dict[str, str] = {}
        register: dict[str, Entry] = {}
        for i, person in enumerate(self.residents[:-reserve]):
            draw = rng.random()
            if i == 0 or draw < PERSON_DIRT["invalid_check_digit"]:
                self.dirt[person.id_no] = "invalid_check_digit"
            elif i == 1 or draw < sum(PERSON_DIRT.values()):
                self.dirt[person.id_no] = "unknown_community"
            since = dt.datetime.combine(first, dt.time(9), SHANGHAI) - dt.timedelta(
                days=rng.randint(8, 6 * 365), minutes=rng.randrange(480)
            )
            register[person.id_no] = Entry(
                person, person.street, person.community, person.categories, "在册", since
            )
        self._registers[first] = register
        for previous, day in zip(self.days, self.days[1:], strict=False):
            self._registers[day] = self._next_day(self._registers[previous], day)

    # --- the register's life -------------------------------------------------------------

    def _next_day(self, before: dict[str, Entry], day: dt.date) -> dict[str, Entry]:
        rng = random.Random(f"{self.seed}:civil_affairs:{self.scale}:{day}")
        register = dict(before)
        clean = sorted(i for i, e in register.items() if i not in self.dirt and e.status == "在册")
        size = len(register)

        def how_many(kind: str) -> int:
            return max(1, round(DAILY[kind] * size))

        def at(hour: int) -> dt.datetime:
            return dt.datetime.combine(day, dt.time(hour, rng.randrange(60)), SHANGHAI)

        chosen = rng.sample(clean, min(len(clean), sum(how_many(k) for k in DAILY)))
        communities = [(s, c) for s in self.district.streets for c in s.communities]
        for kind in ("moved", "categories", "status", "left"):
            for _ in range(how_many(kind)):
                if not chosen:
                    break
                id_no = chosen.pop()
                entry = register[id_no]
                if kind == "moved":
                    street, community = rng.choice(
                        [(s, c) for s, c in communities if c.code != entry.community.code]
                    )
                    register[id_no] = replace(
                        entry, street=street, community=community, updated_at=at(10)
                    )
                elif kind == "categories":
                    toggled = set(entry.categories) ^ {rng.choice(CATEGORIES)}
                    register[id_no] = replace(
                        entry,
                        categories=tuple(c for c in CATEGORIES if c in toggled),
                        updated_at=at(11),
                    )
                elif kind == "status":
                    register[id_no] = replace(
                        entry, status=rng.choice(("迁出", "死亡")), updated_at=at(14)
                    )
                else:
                    del register[id_no]
        for _ in range(how_many("registered")):
            if self.reserve:
                person = self.reserve.pop(0)
                register[person.id_no] = Entry(
                    person, person.street, person.community, person.categories, "在册", at(15)
                )
        return register

    # --- files ---------------------------------------------------------------------------

    def _build(self, day: dt.date) -> tuple[bytes, dict[str, Any]]:
        if day in self._files:
            return self._files[day]
        rng = random.Random(f"{self.seed}:civil_affairs:{self.scale}:{day}:file")
        register = self._registers[day]
        clean = sorted(i for i in register if i not in self.dirt)
        once = rng.choice(clean)  # this day only, an unknown community spelling
        doubled = set(rng.sample(clean, max(1, round(ROW_DIRT["duplicate"] * len(register)))))
        doubled.discard(once)
        counts: Counter[str] = Counter()
        rows: list[list[str]] = []
        for id_no in sorted(register, key=lambda i: (register[i].community.code, i)):
            entry = register[id_no]
            kind = self.dirt.get(id_no) or ("unknown_community_once" if id_no == once else None)
            spelling = self._spelling(entry, kind)
            row = self._row(spelling, entry, kind)
            if kind is None and spelling.random() < ROW_DIRT["id_spelling"]:
                row[0] = id_spelling(spelling, id_no)
                counts["id_spelling"] += 1
            if kind:
                counts[kind] += 1
            older = None
            if id_no in doubled:
                toggled = set(entry.categories) ^ {rng.choice(CATEGORIES)}
                stale = replace(
                    entry,
                    categories=tuple(c for c in CATEGORIES if c in toggled),
                    updated_at=entry.updated_at - dt.timedelta(days=rng.randint(1, 30)),
                )
                older = self._row(self._spelling(stale, None), stale, None)
                counts["duplicate"] += 1
            pair = [row, older] if rng.random() < 0.5 else [older, row]
            rows.extend(r for r in pair if r is not None)
        out = io.StringIO(newline="")
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(HEADER)
        writer.writerows(rows)
        body = out.getvalue().encode("gb18030")
        facts = {"rows": len(rows), "dirt": dict(counts), "once": once, "doubled": sorted(doubled)}
        self._files[day] = (body, facts)
        return self._files[day]

    def _spelling(self, entry: Entry, kind: str | None) -> random.Random:
        """The spelling choices of one version of a person's record, the same in every file."""
        return random.Random(
            f"{self.seed}:civil_affairs:{self.scale}:{entry.resident.id_no}:"
            f"{entry.updated_at.isoformat()}:{entry.community.code}:{kind}"
        )

    def _row(self, rng: random.Random, entry: Entry, kind: str | None) -> list[str]:
        person = entry.resident
        id_no = wrong_check_digit(person.id_no) if kind == "invalid_check_digit" else person.id_no
        community = (
            unknown_community_spelling(entry.community)
            if kind in ("unknown_community", "unknown_community_once")
            else community_spelling(rng, entry.community)
        )
        born = person.birth_date
        birth = rng.choice(
            (born.isoformat(), f"{born.year}/{born.month}/{born.day}", f"{born:%Y%m%d}")
        )
        phone = person.phone
        phone = rng.choice(
            (phone, f"+86 {phone[:3]} {phone[3:7]} {phone[7:]}", f"020-8{phone[-7:]}")
        )
        address = (
            person.address
            if entry.community is person.community
            else (f"{entry.street.aliases[0]}{entry.community.aliases[0]}{rng.randint(1, 99)}号")
        )
        if rng.random() < 0.05:
            address = f'{address},"东座"'
        return [
            id_no,
            person.name,
            person.gender,
            birth,
            street_spelling(rng, entry.street),
            community,
            address,
            phone,
            rng.choice(("、", ";")).join(entry.categories),
            entry.status,
            entry.updated_at.strftime("%Y-%m-%d %H:%M:%S"),
        ]

    def exports(self) -> list[dict[str, Any]]:
        """The exports index: one entry per snapshot, its checksum and size as published."""
        out = []
        for day in self.days:
            body, facts = self._build(day)
            out.append(
                {
                    "name": _snapshot_name(day),
                    "snapshot_date": day.isoformat(),
                    "rows": facts["rows"],
                    "sha256": hashlib.sha256(body).hexdigest(),
                    "size": len(body),
                }
            )
        return out

    def file(self, name: str) -> bytes | None:
        for day in self.days:
            if _snapshot_name(day) == name:
                body = self._build(day)[0]
                if name in self.corrupt_files:  # same size, other bytes: only the checksum tells
                    middle = len(body) // 2
                    body = body[:middle] + bytes([body[middle] ^ 0x01]) + body[middle + 1 :]
                return body
        return None

    def corrupt(self, day: dt.date) -> str:
        name = _snapshot_name(day)
        self.corrupt_files.add(name)
        return name

    def truth(self, day: dt.date) -> dict[str, Any]:
        """What a load of the day's snapshot should make of it.

        ``register``: every person whose row loads, by canonical ID number, as
        (community code, categories, status, gender M/F, birth year); ``held``: people
        whose row is quarantined although their ID number is valid (their history
        continues unchanged).
        """
        _, facts = self._build(day)
        register = self._registers[day]
        loaded = {}
        for id_no, entry in register.items():
            if id_no in self.dirt or id_no == facts["once"]:
                continue
            loaded[id_no] = [
                entry.community.code,
                list(entry.categories),
                entry.status,
                "M" if entry.resident.gender == "男" else "F",
                entry.resident.birth_date.year,
            ]
        dirt = facts["dirt"]
        return {
            "snapshot_date": day.isoformat(),
            "rows": facts["rows"],
            "people": len(register),
            "loaded": len(loaded),
            "quarantined": {
                "invalid ID number check digit": dirt.get("invalid_check_digit", 0),
                "unknown community": dirt.get("unknown_community", 0)
                + dirt.get("unknown_community_once", 0),
            },
            "duplicates": dirt.get("duplicate", 0),
            "id_spellings": dirt.get("id_spelling", 0),
            "held": [facts["once"]],
            "register": loaded,
        }

"""The district's residents in the target groups: the people every department's feed talks about.

One deterministic population per (seed, scale): the same person, with the same
ID number, appears in the civil-affairs register, in health records, in
canteen ledgers and as a volunteer or a beneficiary, so person keys can be
checked across feeds. ``scale`` 1.0 is a district-year as domain.md sizes it
(about 300,000 registered people); tests use a few thousandths of that.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from civicflow.simulator.world import Community, District, Street

REGISTER_AT_SCALE_1 = 300_000
CATEGORIES = ("高龄老人", "独居老人", "空巢老人", "低保对象", "特困人员", "残疾人", "优抚对象")
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蔡蒋余"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉珍凤红金荣建国志文"


@dataclass(frozen=True)
class Resident:
    id_no: str  # canonical 18 characters
    name: str
    gender: str  # 男 / 女
    birth_date: dt.date
    street: Street
    community: Community
    address: str
    phone: str
    categories: tuple[str, ...]


def check_digit(first17: str) -> str:
    from stdnum.cn import ric

    return ric.calc_check_digit(first17 + "0")


def make_id(region: str, birth: dt.date, sequence: int) -> str:
    first17 = f"{region}{birth:%Y%m%d}{sequence:03d}"
    return first17 + check_digit(first17)


def population(district: District, scale: float) -> int:
    return max(40, round(REGISTER_AT_SCALE_1 * scale))


_MADE: dict[tuple[int, str, float], tuple[Resident, ...]] = {}


def residents(district: District, scale: float) -> tuple[Resident, ...]:
    """The registered people at ``scale``, deterministic from the district's seed."""
    key = (district.seed, district.code, scale)
    if key not in _MADE:
        _MADE[key] = _make_residents(district, scale)
    return _MADE[key]


def _make_residents(district: District, scale: float) -> tuple[Resident, ...]:
    rng = random.Random(f"{district.seed}:residents:{scale}")
    communities = [(s, c) for s in district.streets for c in s.communities]
    seen: set[str] = set()
    out = []
    for _ in range(population(district, scale)):
        while True:
            elderly = rng.random() < 0.9
            year = rng.randint(1926, 1966) if elderly else rng.randint(1950, 2005)
            birth = dt.date(year, 1, 1) + dt.timedelta(days=rng.randrange(365))
            male = rng.random() < 0.46
            sequence = rng.randrange(0, 999)
            if (sequence % 2 == 1) != male:
                sequence = (sequence + 1) % 1000
            id_no = make_id(district.code, birth, sequence)
            if id_no not in seen:
                seen.add(id_no)
                break
        street, community = communities[rng.randrange(len(communities))]
        age = 2026 - birth.year
        categories = set()
        if age >= 80:
            categories.add("高龄老人")
        if age >= 60 and rng.random() < 0.18:
            categories.add("独居老人")
        if age >= 60 and rng.random() < 0.2:
            categories.add("空巢老人")
        for category, share in (("低保对象", 0.05), ("特困人员", 0.02), ("残疾人", 0.06)):
            if rng.random() < share:
                categories.add(category)
        if rng.random() < 0.03:
            categories.add("优抚对象")
        if age < 60 and not categories:
            categories.add("残疾人")
        out.append(
            Resident(
                id_no=id_no,
                name=rng.choice(_SURNAMES) + "".join(rng.sample(_GIVEN, rng.randint(1, 2))),
                gender="男" if male else "女",
                birth_date=birth,
                street=street,
                community=community,
                address=f"{street.aliases[0]}{community.aliases[0]}{rng.randint(1, 180)}号"
                f"{rng.randint(1, 30)}0{rng.randint(1, 6)}",
                phone=f"1{rng.choice('3578')}{rng.randrange(10**9):09d}",
                categories=tuple(c for c in CATEGORIES if c in categories),
            )
        )
    return tuple(out)


# --- the departments' spellings ------------------------------------------------------------

_FULLWIDTH = str.maketrans("0123456789Xx", "０１２３４５６７８９Ｘｘ")


def id_spelling(rng: random.Random, id_no: str) -> str:
    """One of the ways a department writes a valid ID number (the same person after cleaning)."""
    choice = rng.randrange(4)
    if choice == 0:
        return id_no.translate(_FULLWIDTH)
    if choice == 1:
        return f" {id_no.lower()} "
    if choice == 2 and id_no[6:8] == "19":  # the legacy 15-digit form drops century and check
        return id_no[:6] + id_no[8:17]
    return f"{id_no[:6]} {id_no[6:14]} {id_no[14:]}"


def wrong_check_digit(id_no: str) -> str:
    digits = "0123456789X"
    return id_no[:17] + digits[(digits.index(id_no[17]) + 3) % len(digits)]


def street_spelling(rng: random.Random, street: Street) -> str:
    return rng.choice([street.name, *street.aliases])


def community_spelling(rng: random.Random, community: Community) -> str:
    return rng.choice([community.name, *community.aliases])


def unknown_community_spelling(community: Community) -> str:
    """A spelling no alias list has: such a record is quarantined, never guessed."""
    return f"{community.aliases[0]}居委会"

"""A deterministic synthetic district: its streets, communities, positions and daily tallies.

Shaped like Guangzhou's Yuexiu district (18 streets, 222 communities, 254
positions at four levels); the same seed always gives the same district.
Coordinates are generated in WGS 84 (the ground truth) and served in GCJ-02,
as the departments' systems do.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from dataclasses import dataclass, field
from typing import Any

from civicflow.domain import SERVICE_AREAS
from civicflow.geo import wgs84_to_gcj02

YUEXIU_STREETS = (
    "洪桥",
    "北京",
    "六榕",
    "流花",
    "光塔",
    "人民",
    "东山",
    "农林",
    "梅花村",
    "黄花岗",
    "华乐",
    "建设",
    "大塘",
    "珠光",
    "大东",
    "白云",
    "登峰",
    "矿泉",
)
PUBLIC_SPACES = (
    "北京路步行街",
    "二沙岛绿道",
    "海珠广场",
    "越秀公园",
    "东山口",
    "广州塔江景",
    "中山纪念堂",
    "农讲所",
    "流花湖",
    "花城汇",
    "五羊新城",
    "天河路口",
    "沿江西路",
)
ROOMS = ("党员活动室", "议事厅", "图书室", "多功能厅", "心理咨询室", "儿童之家", "长者服务站")
PLATFORMS = ("政务服务一体机", "志愿服务平台", "长者饭堂", "家庭医生工作站", "法律服务站")
_SYLLABLES = """
旧南海 东风 仓边 大马站 雅荷塘 小北 盘福 越华 法政 大南 惠福 诗书
解放 中山 光明 广卫 较场 豪贤 文德 德政 大沙头 白云 东湖 新河浦
竹丝岗 执信 梅东 华侨 寺右 龟岗 福今 合群 淘金 环市 麓湖 先烈 建新
水荫 犀牛 永泰 松柏 黄花 农林 广九 杨箕 二沙 珠光 回龙 府前 西湖
流水井 芳草 长塘 朝天 象岗 应元 流花 下塘 登峰 三元里
""".split()  # noqa: SIM905 - a word list reads best as text

DISTRICT_BOX_WGS84 = (113.245, 23.105, 113.320, 23.150)  # west, south, east, north


@dataclass
class Community:
    code: str
    name: str
    aliases: list[str]
    longitude: float  # WGS 84
    latitude: float


@dataclass
class Street:
    code: str
    name: str  # the official name, 北京街道
    aliases: list[str]  # 北京街, 北京
    communities: list[Community] = field(default_factory=list)


@dataclass
class Position:
    position_code: str
    name: str
    level: str
    street: Street | None
    community: Community | None
    longitude: float  # WGS 84
    latitude: float
    services: list[str]
    rooms: list[str]
    integrated_platforms: list[str]
    opening_hours: str
    opened_on: dt.date
    status: str
    street_spelling: str | None = None
    community_spelling: str | None = None


@dataclass
class District:
    code: str
    name: str
    streets: list[Street]
    positions: list[Position]
    seed: int

    @property
    def communities(self) -> list[Community]:
        return [c for s in self.streets for c in s.communities]


def _community_names(rng: random.Random, count: int) -> list[str]:
    names: list[str] = []
    pool = list(_SYLLABLES)
    rng.shuffle(pool)
    suffixes = ("", "东", "西", "南", "北", "新村", "一", "二", "三")
    for suffix in suffixes:
        for base in pool:
            if len(names) == count:
                return names
            names.append(base + suffix if suffix else base)
    raise ValueError(f"cannot name {count} communities")


def build_district(
    seed: int = 20261127,
    district_code: str = "440104",
    district_name: str = "越秀区",
    street_names: tuple[str, ...] = YUEXIU_STREETS,
    communities: int = 222,
    public_spaces: tuple[str, ...] = PUBLIC_SPACES,
) -> District:
    rng = random.Random(seed)
    west, south, east, north = DISTRICT_BOX_WGS84
    columns = 6
    rows = -(-len(street_names) // columns)
    cell_w, cell_h = (east - west) / columns, (north - south) / rows
    names = iter(_community_names(rng, communities))
    per_street = [communities // len(street_names)] * len(street_names)
    for i in range(communities % len(street_names)):
        per_street[i] += 1

    streets = []
    for i, short in enumerate(street_names):
        code = f"{district_code}{i + 1:03d}"
        street = Street(code=code, name=f"{short}街道", aliases=[f"{short}街", short])
        x0, y0 = west + (i % columns) * cell_w, south + (i // columns) * cell_h
        for j in range(per_street[i]):
            base = next(names)
            street.communities.append(
                Community(
                    code=f"{code}{j + 1:03d}",
                    name=f"{base}社区",
                    aliases=[base],
                    longitude=round(x0 + rng.uniform(0.1, 0.9) * cell_w, 6),
                    latitude=round(y0 + rng.uniform(0.1, 0.9) * cell_h, 6),
                )
            )
        streets.append(street)

    def spelling(options: list[str]) -> str:
        return options[rng.randrange(len(options))]

    def opened() -> dt.date:
        return dt.date(2019, 1, 1) + dt.timedelta(days=rng.randrange(3 * 365))

    positions: list[Position] = []
    hub = streets[1] if len(streets) > 1 else streets[0]
    positions.append(
        Position(
            position_code=f"{district_code}-D01",
            name=f"{district_name}党群服务中心",
            level="district",
            street=hub,
            community=None,
            longitude=hub.communities[0].longitude + 0.002,
            latitude=hub.communities[0].latitude + 0.001,
            services=list(SERVICE_AREAS),
            rooms=list(ROOMS),
            integrated_platforms=list(PLATFORMS),
            opening_hours="周一至周日 09:00-21:00",
            opened_on=dt.date(2019, 7, 1),
            status="open",
            street_spelling=spelling([hub.name, *hub.aliases]),
        )
    )
    for street in streets:
        anchor = street.communities[0]
        positions.append(
            Position(
                position_code=f"{street.code}-S",
                name=f"{street.name}党群服务中心",
                level="street",
                street=street,
                community=None,
                longitude=round(anchor.longitude + rng.uniform(-0.002, 0.002), 6),
                latitude=round(anchor.latitude + rng.uniform(-0.002, 0.002), 6),
                services=list(SERVICE_AREAS),
                rooms=rng.sample(ROOMS, 6),
                integrated_platforms=rng.sample(PLATFORMS, 3),
                opening_hours="周一至周六 09:00-18:00",
                opened_on=opened(),
                status="open",
                street_spelling=spelling([street.name, *street.aliases]),
            )
        )
    closed = set(rng.sample(range(communities), 2))
    k = 0
    for street in streets:
        for community in street.communities:
            services = ["综合接待", *rng.sample(SERVICE_AREAS[1:], rng.randint(4, 7))]
            positions.append(
                Position(
                    position_code=f"{community.code}-C",
                    name=f"{community.name}党群服务站",
                    level="community",
                    street=street,
                    community=community,
                    longitude=round(community.longitude + rng.uniform(-0.001, 0.001), 6),
                    latitude=round(community.latitude + rng.uniform(-0.001, 0.001), 6),
                    services=[s for s in SERVICE_AREAS if s in services],
                    rooms=rng.sample(ROOMS, 4),
                    integrated_platforms=rng.sample(PLATFORMS, 2),
                    opening_hours="周一至周五 09:00-17:30",
                    opened_on=opened(),
                    status="closed" if k in closed else "open",
                    street_spelling=spelling([street.name, *street.aliases]),
                    community_spelling=spelling([community.name, *community.aliases]),
                )
            )
            k += 1
    for i, name in enumerate(public_spaces):
        lon, lat = rng.uniform(west, east), rng.uniform(south, north)
        street = streets[
            min(int((lat - south) / cell_h), rows - 1) * columns
            + min(int((lon - west) / cell_w), columns - 1)
        ]
        services = ["综合接待", "便民服务", *rng.sample(SERVICE_AREAS[2:7], rng.randint(1, 3))]
        positions.append(
            Position(
                position_code=f"{district_code}-P{i + 1:02d}",
                name=f"{name}党群服务站",
                level="public_space",
                street=street,
                community=None,
                longitude=round(lon, 6),
                latitude=round(lat, 6),
                services=[s for s in SERVICE_AREAS if s in services],
                rooms=rng.sample(ROOMS, 2),
                integrated_platforms=[],
                opening_hours="周一至周日 10:00-22:00",
                opened_on=opened(),
                status="open",
                street_spelling=spelling([street.name, *street.aliases]),
            )
        )
    return District(district_code, district_name, streets, positions, seed)


def _gcj(longitude: float, latitude: float) -> tuple[float, float]:
    lon, lat = wgs84_to_gcj02(longitude, latitude)
    return round(lon, 7), round(lat, 7)


def divisions_document(district: District) -> dict[str, Any]:
    streets = []
    for s in district.streets:
        communities = []
        for c in s.communities:
            lon, lat = _gcj(c.longitude, c.latitude)
            communities.append(
                {
                    "code": c.code,
                    "name": c.name,
                    "aliases": c.aliases,
                    "longitude": lon,
                    "latitude": lat,
                }
            )
        streets.append(
            {"code": s.code, "name": s.name, "aliases": s.aliases, "communities": communities}
        )
    return {"district": {"code": district.code, "name": district.name}, "streets": streets}


def position_address(district: District, p: Position) -> str:
    return f"广州市{district.name}{p.street.name if p.street else ''}{p.name}"


def positions_document(district: District) -> list[dict[str, Any]]:
    out = []
    for p in district.positions:
        lon, lat = _gcj(p.longitude, p.latitude)
        out.append(
            {
                "position_code": p.position_code,
                "name": p.name,
                "level": p.level,
                "street": p.street_spelling,
                "community": p.community_spelling,
                "address": position_address(district, p),
                "longitude": lon,
                "latitude": lat,
                "services": p.services,
                "rooms": p.rooms,
                "integrated_platforms": p.integrated_platforms,
                "opening_hours": p.opening_hours,
                "opened_on": p.opened_on.isoformat(),
                "status": p.status,
            }
        )
    return out


_BASE_VISITORS = {"district": 60, "street": 40, "community": 15, "public_space": 120}


def _rng(*parts: Any) -> random.Random:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def visits_document(district: District, day: dt.date, version: int = 0) -> list[dict[str, Any]]:
    """One tally per position open on ``day``; ``version`` > 0 is a corrected re-send."""
    weekend = day.weekday() >= 5
    out = []
    for p in district.positions:
        if p.status != "open" or p.opened_on > day:
            continue
        rng = _rng(district.seed, p.position_code, day.isoformat(), version)
        base = _BASE_VISITORS[p.level] * (2.5 if weekend and p.level == "public_space" else 1)
        visitors = max(0, int(rng.gauss(base, base / 4)))
        activities = rng.randint(0, 5 if p.level in ("district", "street") else 2)
        participants = sum(rng.randint(5, 30) for _ in range(activities))
        out.append(
            {
                "position_code": p.position_code,
                "date": day.isoformat(),
                "visitors": visitors,
                "activities_held": activities,
                "participants": participants,
            }
        )
    return out

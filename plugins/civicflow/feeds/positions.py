"""The positions feed: the register of service positions, the district's divisions, daily tallies.

Interface: ``/divisions``, ``/positions`` and ``/visits?date=`` of the
``positions_feed`` connection. Coordinates arrive in GCJ-02 and are stored in
WGS 84; street and community names are resolved to codes through the
``/divisions`` names and aliases.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from civicflow.domain import POSITION_LEVELS as LEVELS
from civicflow.domain import SERVICE_AREAS
from civicflow.geo import gcj02_to_wgs84
from civicflow.spec import Column, Context, Entity, Field, Reject, Request, Window

FEED = "positions"
CODE = r"^[0-9A-Za-z_-]{1,32}$"
# Mainland China, generously: a coordinate outside is a wrong or swapped value.
LONGITUDE = {"min": 73.0, "max": 136.0}
LATITUDE = {"min": 3.0, "max": 54.0}


class FeedFormatError(ValueError):
    """A payload that does not have the shape the interface defines."""


def _expect_list(payload: Any, what: str) -> list:
    if not isinstance(payload, list):
        raise FeedFormatError(f"{what}: expected a JSON array, got {type(payload).__name__}")
    return payload


def _streets(payload: Any) -> Iterable[Mapping[str, Any]]:
    if not isinstance(payload, dict) or not isinstance(payload.get("streets"), list):
        raise FeedFormatError("/divisions: expected an object with a 'streets' array")
    district = payload.get("district") or {}
    for street in payload["streets"]:
        if isinstance(street, dict):
            record = {k: v for k, v in street.items() if k != "communities"}
            record["district_code"] = district.get("code")
            yield record
        else:
            yield street


def _communities(payload: Any) -> Iterable[Mapping[str, Any]]:
    if not isinstance(payload, dict) or not isinstance(payload.get("streets"), list):
        raise FeedFormatError("/divisions: expected an object with a 'streets' array")
    for street in payload["streets"]:
        communities = street.get("communities") if isinstance(street, dict) else None
        if not isinstance(communities, list):
            raise FeedFormatError(f"/divisions: street {street!r:.60} has no 'communities' array")
        for community in communities:
            if isinstance(community, dict):
                yield {**community, "street_code": street.get("code")}
            else:
                yield community


def _single(path: str):
    def requests(window: Window) -> list[Request]:
        return [Request(path)]

    return requests


def _wgs84(row: Mapping[str, Any]) -> tuple[float, float]:
    return gcj02_to_wgs84(row["longitude"], row["latitude"])


def _street(row: dict[str, Any], context: Context) -> dict[str, Any]:
    return {
        "street_code": row["code"],
        "street_name": row["name"],
        "aliases": row["aliases"] or [],
        "district_code": row["district_code"],
    }


def _community(row: dict[str, Any], context: Context) -> dict[str, Any]:
    longitude, latitude = _wgs84(row)
    return {
        "community_code": row["code"],
        "community_name": row["name"],
        "street_code": row["street_code"],
        "longitude": longitude,
        "latitude": latitude,
        "aliases": row["aliases"] or [],
    }


class DivisionIndex:
    """Street and community codes, names and aliases to codes, as ``/divisions`` defines them."""

    def __init__(self, rows: list[dict[str, Any]]):
        self.streets: dict[str, set[str]] = {}
        self.communities: dict[tuple[str, str], set[str]] = {}
        for r in rows:
            name = r["name"].strip()
            if r["kind"] == "street":
                self.streets.setdefault(name, set()).add(r["street_code"])
            else:
                key = (r["street_code"], name)
                self.communities.setdefault(key, set()).add(r["community_code"])
        # The names that resolve, to their one code: looked up first, once a record.
        self._street = {n: next(iter(c)) for n, c in self.streets.items() if len(c) == 1}
        self._community = {k: next(iter(c)) for k, c in self.communities.items() if len(c) == 1}

    def street(self, name: str) -> str:
        code = self._street.get(name)
        if code is not None:
            return code
        codes = self.streets.get(name.strip(), set())
        if len(codes) != 1:
            raise Reject(
                f"unknown street {name!r}" if not codes else f"ambiguous street name {name!r}"
            )
        return next(iter(codes))

    def community(self, street_code: str, name: str) -> str:
        code = self._community.get((street_code, name))
        if code is not None:
            return code
        codes = self.communities.get((street_code, name.strip()), set())
        if len(codes) != 1:
            raise Reject(
                f"unknown community {name!r} in street {street_code}"
                if not codes
                else f"ambiguous community name {name!r} in street {street_code}"
            )
        return next(iter(codes))


def index_divisions(references: Mapping[str, list[dict[str, Any]]]) -> DivisionIndex:
    return DivisionIndex(references["division_references"])


def _position(row: dict[str, Any], context: Context) -> dict[str, Any]:
    divisions: DivisionIndex = context.references
    street_code = divisions.street(row["street"]) if row["street"] else None
    community_code = None
    if row["community"]:
        if street_code is None:
            raise Reject("a community is given without its street")
        community_code = divisions.community(street_code, row["community"])
    if row["level"] == "community" and community_code is None:
        raise Reject("a community-level position without a community")
    unknown = sorted(set(row["services"] or []) - set(SERVICE_AREAS))
    if unknown:
        raise Reject(f"unknown service areas {unknown}")
    longitude, latitude = _wgs84(row)
    return {
        "position_code": row["position_code"],
        "position_name": row["name"],
        "level": row["level"],
        "street_code": street_code,
        "community_code": community_code,
        "address": row["address"],
        "longitude": longitude,
        "latitude": latitude,
        "services": row["services"] or [],
        "rooms": row["rooms"] or [],
        "integrated_platforms": row["integrated_platforms"] or [],
        "opening_hours": row["opening_hours"],
        "opened_on": row["opened_on"],
        "status": row["status"],
    }


def _index_positions(references: Mapping[str, list[dict[str, Any]]]) -> set[str]:
    return {r["position_code"] for r in references["position_references"]}


def _visit(row: dict[str, Any], context: Context) -> dict[str, Any]:
    if row["position_code"] not in context.references:
        raise Reject(f"unknown position {row['position_code']!r}")
    return {
        "position_code": row["position_code"],
        "visit_date": row["date"],
        "visitors": row["visitors"],
        "activities_held": row["activities_held"],
        "participants": row["participants"],
    }


def visit_requests(window: Window) -> list[Request]:
    """The days to fetch: the run's interval, a look-back for re-sent days, and missed days.

    ``lookback_days`` (connection extra, default 3) re-reads recent days, which a
    position may re-send with corrected numbers; days after the last committed
    watermark are caught up, at most ``max_catchup_days`` (default 31) back.
    """
    lookback = int(window.options.get("lookback_days", 3))
    max_catchup = int(window.options.get("max_catchup_days", 31))
    end = window.end_date
    first = min(window.start_date, end - dt.timedelta(days=max(lookback, 1) - 1))
    if window.watermark:
        first = min(first, dt.date.fromisoformat(window.watermark) + dt.timedelta(days=1))
    first = max(first, end - dt.timedelta(days=max_catchup - 1))
    days = (end - first).days + 1
    return [
        Request("visits", {"date": (first + dt.timedelta(days=i)).isoformat()}) for i in range(days)
    ]


STREETS = Entity(
    feed=FEED,
    name="streets",
    description="Streets of the district, with the other spellings departments use.",
    requests=_single("divisions"),
    records=_streets,
    fields=(
        Field("code", "text", pattern=CODE),
        Field("name", "text"),
        Field("aliases", "text[]", required=False, nullable=True),
        Field("district_code", "text", pattern=CODE),
    ),
    columns=(
        Column("street_code", "text"),
        Column("street_name", "text"),
        Column("aliases", "text[]"),
        Column("district_code", "text"),
    ),
    key=("street_code",),
    target="core.dim_street",
    transform=_street,
    max_rejection_rate=0.0,
)

COMMUNITIES = Entity(
    feed=FEED,
    name="communities",
    description="Communities (residents' committees) with their centroids.",
    requests=_single("divisions"),
    records=_communities,
    fields=(
        Field("code", "text", pattern=CODE),
        Field("name", "text"),
        Field("aliases", "text[]", required=False, nullable=True),
        Field("street_code", "text", pattern=CODE),
        Field("longitude", "double", **LONGITUDE),
        Field("latitude", "double", **LATITUDE),
    ),
    columns=(
        Column("community_code", "text"),
        Column("community_name", "text"),
        Column("street_code", "text"),
        Column("longitude", "double"),
        Column("latitude", "double"),
        Column("aliases", "text[]"),
    ),
    key=("community_code",),
    target="core.dim_community",
    transform=_community,
    max_rejection_rate=0.0,
)

POSITIONS = Entity(
    feed=FEED,
    name="positions",
    description="The register of service positions at four levels.",
    requests=_single("positions"),
    records=lambda payload: _expect_list(payload, "/positions"),
    fields=(
        Field("position_code", "text", pattern=CODE),
        Field("name", "text"),
        Field("level", "text", values=LEVELS),
        Field("street", "text", nullable=True),
        Field("community", "text", nullable=True),
        Field("address", "text", nullable=True),
        Field("longitude", "double", **LONGITUDE),
        Field("latitude", "double", **LATITUDE),
        Field("services", "text[]", nullable=True),
        Field("rooms", "text[]", required=False, nullable=True),
        Field("integrated_platforms", "text[]", required=False, nullable=True),
        Field("opening_hours", "text", required=False, nullable=True),
        Field("opened_on", "date", required=False, nullable=True),
        Field("status", "text", values=("open", "closed")),
    ),
    columns=(
        Column("position_code", "text"),
        Column("position_name", "text"),
        Column("level", "text"),
        Column("street_code", "text"),
        Column("community_code", "text"),
        Column("address", "text"),
        Column("longitude", "double"),
        Column("latitude", "double"),
        Column("services", "text[]"),
        Column("rooms", "text[]"),
        Column("integrated_platforms", "text[]"),
        Column("opening_hours", "text"),
        Column("opened_on", "date"),
        Column("status", "text"),
    ),
    key=("position_code",),
    target="core.dim_position",
    transform=_position,
    references=("division_references",),
    index_references=index_divisions,
    max_rejection_rate=0.05,
)

VISITS = Entity(
    feed=FEED,
    name="visits",
    description="Front-desk tallies: one row per open position per day.",
    requests=visit_requests,
    records=lambda payload: _expect_list(payload, "/visits"),
    fields=(
        Field("position_code", "text", pattern=CODE),
        Field("date", "date"),
        Field("visitors", "integer", min=0, max=100_000),
        Field("activities_held", "integer", min=0, max=1_000),
        Field("participants", "integer", min=0, max=100_000),
    ),
    columns=(
        Column("position_code", "text"),
        Column("visit_date", "date"),
        Column("visitors", "integer"),
        Column("activities_held", "integer"),
        Column("participants", "integer"),
    ),
    key=("position_code", "visit_date"),
    target="core.fact_position_day",
    transform=_visit,
    references=("position_references",),
    index_references=_index_positions,
    watermark_column="visit_date",
    max_rejection_rate=0.05,
)

# In dependency order: each entity's references are merged before it is validated.
ENTITIES = (STREETS, COMMUNITIES, POSITIONS, VISITS)

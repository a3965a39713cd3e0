"""The volunteer platform: volunteers, activities and service hours, by cursor.

Interface: ``GET /v2/volunteers``, ``/v2/activities``, ``/v2/service-hours``
with ``updated_since``, ``cursor`` and ``limit``, the key in ``X-Api-Key`` (the
``volunteer_feed`` connection's password). A 429 waits for ``Retry-After``; a
cursor that expired (410 Gone) restarts the listing from the last committed
watermark, dropping the pages read so far, so nothing is loaded twice.

Activities resolve their position by ``position_code``, else by the venue
address of a registered position; service hours take their position, street
and date from their activity, and their ``volunteer_key`` from the volunteer.
Hours naming a beneficiary become ``core.fact_service`` rows
(``volunteer_help``) as well.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from civicflow.domain import VOLUNTEER_CATEGORIES
from civicflow.feeds.health import SERVICE_COLUMNS, updated_since
from civicflow.feeds.positions import DivisionIndex, FeedFormatError
from civicflow.identity import resident_id, uscc
from civicflow.spec import Column, Context, Entity, Field, Reject, Window

if TYPE_CHECKING:  # requests is imported by the tasks, never at DAG parse
    from civicflow.httpclient import FeedClient, Fetched

log = logging.getLogger(__name__)

FEED = "volunteer"
CATEGORIES = VOLUNTEER_CATEGORIES
MAX_RESTARTS = 3
# Items a page unless the connection's extra says otherwise: at about 10 requests a second,
# a year of service hours (625,000) takes 63 s in pages of 1,000, 125 s in pages of 500.
PAGE_SIZE = 1000
MAX_PAGES = 100_000


def cursor_pages(path: str):
    """A fetch function that follows ``next_cursor`` and restarts once a cursor expires."""

    def fetch(client: FeedClient, window: Window) -> Iterator[Fetched]:
        from civicflow.httpclient import FeedError

        since = updated_since(window)
        limit = int(window.options.get("limit", PAGE_SIZE))
        for attempt in range(MAX_RESTARTS + 1):
            pages: list[Fetched] = []
            cursor = None
            try:
                for _ in range(MAX_PAGES):
                    params = {"updated_since": since, "limit": limit}
                    if cursor:
                        params["cursor"] = cursor
                    fetched = client.get_json(path, params)
                    document = fetched.document
                    if not isinstance(document, dict) or not isinstance(
                        document.get("items"), list
                    ):
                        raise FeedError(FEED, fetched.url, "expected an object with 'items'")
                    cursor = document.get("next_cursor")
                    # Held until the listing is whole (a 410 restarts it): the body alone,
                    # as extract lands it, not its decoded records as well.
                    pages.append(fetched._replace(document=None))
                    if not cursor:
                        break
                else:
                    raise FeedError(FEED, path, f"more than {MAX_PAGES} pages")
            except FeedError as exc:
                if exc.status != 410:
                    raise
                if attempt == MAX_RESTARTS:
                    raise FeedError(
                        FEED,
                        exc.url,
                        f"the cursor expired (410 Gone) in each of {MAX_RESTARTS + 1} listings "
                        f"from {since}; the listing is slower than the cursor lasts",
                        exc.status,
                    ) from exc
                log.warning(
                    "%s: cursor expired after %d pages; starting again from %s",
                    path,
                    len(pages),
                    since,
                )
                continue
            yield from pages
            return

    return fetch


def _items(payload: Any) -> list[Mapping[str, Any]]:
    if not isinstance(payload, dict) or not isinstance(payload.get("items"), list):
        raise FeedFormatError("expected an object with an 'items' array")
    return payload["items"]


def _divisions(references: Mapping[str, list[dict[str, Any]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "division_references" in references:
        out["divisions"] = DivisionIndex(references["division_references"])
    if "position_references" in references:
        positions = references["position_references"]
        out["positions"] = {p["position_code"]: p for p in positions}
        by_address: dict[str, set[str]] = {}
        for p in positions:
            if p.get("address"):
                by_address.setdefault(p["address"].strip(), set()).add(p["position_code"])
        out["by_address"] = by_address
    if "activity_references" in references:
        out["activities"] = {a["activity_id"]: a for a in references["activity_references"]}
    if "volunteer_references" in references:
        out["volunteers"] = {
            v["volunteer_id"]: v["volunteer_key"] for v in references["volunteer_references"]
        }
    return out


def _volunteer(row: dict[str, Any], context: Context) -> dict[str, Any]:
    divisions: DivisionIndex = context.references["divisions"]
    key = None
    if row["id_no"] is not None:
        key = context.person_key(resident_id(row["id_no"]))
    # Without an ID number (volunteers from outside the mainland) nothing else checks it.
    if row["birth_date"] is not None and row["birth_date"] > dt.date.today():
        raise Reject(f"birth_date {row['birth_date']} is in the future")
    street_code = divisions.street(row["street"]) if row["street"] else None
    community_code = None
    if row["community"]:
        if street_code is None:
            raise Reject("a community is given without its street")
        community_code = divisions.community(street_code, row["community"])
    return {
        "volunteer_id": row["volunteer_id"],
        "volunteer_key": key,
        "gender": {"男": "M", "女": "F"}.get(row["gender"]),
        "birth_year": row["birth_date"].year if row["birth_date"] else None,
        "street_code": street_code,
        "community_code": community_code,
        "is_party_member": row["is_party_member"],
        "registered_at": row["registered_at"],
        "source_updated_at": row["updated_at"],
    }


def _activity(row: dict[str, Any], context: Context) -> dict[str, Any]:
    refs = context.references
    organiser = uscc(row["organizer_uscc"])
    code = row["position_code"]
    if code is not None:
        if code not in refs["positions"]:
            raise Reject(f"unknown position {code!r}")
    else:
        codes = refs["by_address"].get((row["venue_address"] or "").strip(), set())
        if len(codes) > 1:
            raise Reject(f"venue address {row['venue_address']!r} matches several positions")
        code = next(iter(codes), None)  # an address that is no position: a venue elsewhere
    position = refs["positions"].get(code) if code else None
    starts, ends = row["start_time"], row["end_time"]  # local times read as Asia/Shanghai
    if ends < starts:
        raise Reject("end_time is before start_time")
    return {
        "activity_id": row["activity_id"],
        "source_feed": FEED,
        "title": row["title"],
        "category": row["category"],
        "position_code": code,
        "street_code": position["street_code"] if position else None,
        "community_code": position["community_code"] if position else None,
        "start_at": starts,
        "end_at": ends,
        "participants": None,  # the platform does not report it; see the hours per activity
        "organizer_uscc": organiser,
        "status": row["status"],
        "source_updated_at": row["updated_at"],
    }


def _activity_of(row: dict[str, Any], context: Context) -> dict[str, Any]:
    activity = context.references["activities"].get(row["activity_id"])
    if activity is None:
        raise Reject(f"unknown activity {row['activity_id']!r}")
    if row["volunteer_id"] not in context.references["volunteers"]:
        raise Reject(f"unknown volunteer {row['volunteer_id']!r}")
    return activity


def _hours(row: dict[str, Any], context: Context) -> dict[str, Any]:
    activity = _activity_of(row, context)
    return {
        "record_id": row["record_id"],
        "activity_id": row["activity_id"],
        "volunteer_id": row["volunteer_id"],
        "volunteer_key": context.references["volunteers"][row["volunteer_id"]],
        "position_code": activity["position_code"],
        "street_code": activity["street_code"],
        "service_date": activity["service_date"],
        "hours": row["hours"],
        "status": row["status"],
        "source_updated_at": row["updated_at"],
    }


def _with_beneficiary(payload: Any) -> list[Mapping[str, Any]]:
    """Only the hours that name the resident helped are services delivered to a person."""
    return [i for i in _items(payload) if not isinstance(i, Mapping) or i.get("beneficiary_id_no")]


def _help(row: dict[str, Any], context: Context) -> dict[str, Any]:
    activity = _activity_of(row, context)
    key = context.person_key(resident_id(row["beneficiary_id_no"]))
    return {
        "service_id": f"{FEED}:{row['record_id']}",
        "source_feed": FEED,
        "source_record_id": row["record_id"],
        "person_key": key,
        "service_area": "volunteer_help",
        "service_type": activity["category"],
        "position_code": activity["position_code"],
        "community_code": activity["community_code"],
        "street_code": activity["street_code"],
        "service_date": activity["service_date"],
        "service_time": None,
        "quantity": row["hours"],
        "unit": "hour",
        "amount_yuan": None,
        "status": "cancelled" if row["status"] == "revoked" else "completed",
        "provider_code": None,
        "source_updated_at": row["updated_at"],
    }


ID_FIELD = Field("id_no", "text", personal=True, nullable=True)
UPDATED = Field("updated_at", "timestamptz")
HOURS_FIELDS = (
    Field("record_id", "text", pattern=r"^\S{1,64}$"),
    Field("activity_id", "text"),
    Field("volunteer_id", "text"),
    Field("hours", "numeric", min=0.01, max=24),
    Field("beneficiary_id_no", "text", personal=True, nullable=True),
    Field("status", "text", values=("confirmed", "revoked")),
    UPDATED,
)
HOURS_REFERENCES = ("activity_references", "volunteer_references")

VOLUNTEERS = Entity(
    feed=FEED,
    name="volunteers",
    description="Registered volunteers; volunteer_key where the ID number is known.",
    fetch=cursor_pages("v2/volunteers"),
    records=_items,
    fields=(
        Field("volunteer_id", "text", pattern=r"^\S{1,64}$"),
        ID_FIELD,
        Field("name", "text", personal=True, nullable=True),
        Field("gender", "text", nullable=True, values=("男", "女")),
        Field("birth_date", "date", nullable=True),
        Field("phone", "text", personal=True, nullable=True),
        Field("street", "text", nullable=True),
        Field("community", "text", nullable=True),
        Field("is_party_member", "boolean"),
        Field("registered_at", "timestamptz"),
        UPDATED,
    ),
    columns=(
        Column("volunteer_id", "text"),
        Column("volunteer_key", "text"),
        Column("gender", "text"),
        Column("birth_year", "integer"),
        Column("street_code", "text"),
        Column("community_code", "text"),
        Column("is_party_member", "boolean"),
        Column("registered_at", "timestamptz"),
        Column("source_updated_at", "timestamptz"),
    ),
    key=("volunteer_id",),
    target="core.dim_volunteer",
    transform=_volunteer,
    references=("division_references",),
    index_references=_divisions,
    uses_person_key=True,
    watermark_column="source_updated_at",
    latest_by="source_updated_at",
)

ACTIVITIES = Entity(
    feed=FEED,
    name="activities",
    description="Volunteer activities, placed at a position by code or by venue address.",
    fetch=cursor_pages("v2/activities"),
    records=_items,
    fields=(
        Field("activity_id", "text", pattern=r"^\S{1,64}$"),
        Field("title", "text", nullable=True),
        Field("category", "text", values=CATEGORIES),
        Field("position_code", "text", nullable=True),
        Field("venue_address", "text", nullable=True),
        Field("start_time", "timestamptz"),
        Field("end_time", "timestamptz"),
        Field("organizer_name", "text", nullable=True),
        Field("organizer_uscc", "text"),
        Field("status", "text", values=("published", "finished", "cancelled")),
        UPDATED,
    ),
    columns=(
        Column("activity_id", "text"),
        Column("source_feed", "text"),
        Column("title", "text"),
        Column("category", "text"),
        Column("position_code", "text"),
        Column("street_code", "text"),
        Column("community_code", "text"),
        Column("start_at", "timestamptz"),
        Column("end_at", "timestamptz"),
        Column("participants", "integer"),
        Column("organizer_uscc", "text"),
        Column("status", "text"),
        Column("source_updated_at", "timestamptz"),
    ),
    key=("activity_id",),
    target="core.fact_activity",
    transform=_activity,
    references=("position_references",),
    index_references=_divisions,
    watermark_column="source_updated_at",
    latest_by="source_updated_at",
)

SERVICE_HOURS = Entity(
    feed=FEED,
    name="service_hours",
    description="Confirmed (and revoked) volunteer hours, placed where their activity was held.",
    fetch=cursor_pages("v2/service-hours"),
    records=_items,
    fields=HOURS_FIELDS,
    columns=(
        Column("record_id", "text"),
        Column("activity_id", "text"),
        Column("volunteer_id", "text"),
        Column("volunteer_key", "text"),
        Column("position_code", "text"),
        Column("street_code", "text"),
        Column("service_date", "date"),
        Column("hours", "numeric"),
        Column("status", "text"),
        Column("source_updated_at", "timestamptz"),
    ),
    key=("record_id",),
    target="core.fact_volunteer_hours",
    transform=_hours,
    references=HOURS_REFERENCES,
    index_references=_divisions,
    watermark_column="source_updated_at",
    latest_by="source_updated_at",
)

VOLUNTEER_HELP = Entity(
    feed=FEED,
    name="volunteer_help",
    description="Service hours that name the resident helped, as services delivered to them.",
    fetch=cursor_pages("v2/service-hours"),
    records=_with_beneficiary,
    fields=HOURS_FIELDS,
    columns=SERVICE_COLUMNS,
    key=("service_id",),
    target="core.fact_service",
    transform=_help,
    references=HOURS_REFERENCES,
    index_references=_divisions,
    uses_person_key=True,
    watermark_column="source_updated_at",
    latest_by="source_updated_at",
    listing_of="service_hours",
)

ENTITIES = (VOLUNTEERS, ACTIVITIES, SERVICE_HOURS, VOLUNTEER_HELP)

"""The health feed: community health service records, incremental by ``updated_since``.

Interface: ``POST /oauth/token`` (client credentials from the ``health_feed``
connection: login = client_id, password = client_secret) and
``GET /api/v1/service-records?updated_since=&page=&page_size=``. The token is
renewed when the API answers 401 in the middle of paging (see
:class:`civicflow.httpclient.FeedClient`). Each run asks for the records
changed since the last committed watermark; the watermark moves only when the
batch commits. Records become ``core.fact_service`` rows (service_area
``health``); ``details`` (clinical measurements) stays in ``raw``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from civicflow.feeds.positions import DivisionIndex, FeedFormatError, index_divisions
from civicflow.identity import resident_id
from civicflow.parse import SHANGHAI
from civicflow.spec import Column, Context, Entity, Field, Window

if TYPE_CHECKING:  # requests is imported by the tasks, never at DAG parse
    from civicflow.httpclient import FeedClient, Fetched

FEED = "health"
SERVICE_TYPES = ("FD_CONTRACT", "ELDER_CHECKUP", "CHRONIC_FOLLOWUP", "HOME_VISIT")
RECORDS_PATH = "api/v1/service-records"
INITIAL_SINCE = "1970-01-01T00:00:00+08:00"  # no watermark yet: everything the source has
# Records a page unless the connection's extra says otherwise: fewer, larger requests (a
# year is 1.5 million records); a server that pages smaller says so in total_pages.
PAGE_SIZE = 1000
MAX_PAGES = 100_000


def updated_since(window: Window) -> str:
    """Where to start: the committed watermark, else the extra ``initial_updated_since``."""
    if window.watermark:
        return dt.datetime.fromisoformat(window.watermark).isoformat()
    return str(window.options.get("initial_updated_since", INITIAL_SINCE))


def fetch_pages(client: FeedClient, window: Window) -> Iterator[Fetched]:
    """Every page of the records changed since the watermark, as the API numbers them."""
    from civicflow.httpclient import FeedError

    since = updated_since(window)
    size = int(window.options.get("page_size", PAGE_SIZE))
    page, pages = 1, 1
    while page <= pages:
        fetched = client.get_json(
            RECORDS_PATH, {"updated_since": since, "page": page, "page_size": size}
        )
        document = fetched.document
        if not isinstance(document, dict) or not isinstance(document.get("data"), list):
            raise FeedError(FEED, fetched.url, "expected an object with a 'data' array")
        try:
            pages = int(document["total_pages"])
        except (KeyError, TypeError, ValueError) as exc:
            raise FeedError(FEED, fetched.url, "the page has no total_pages") from exc
        if pages > MAX_PAGES:
            raise FeedError(FEED, fetched.url, f"total_pages {pages} is beyond belief")
        yield fetched
        page += 1


def _records(payload: Any) -> list[Mapping[str, Any]]:
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
        raise FeedFormatError("service-records: expected an object with a 'data' array")
    return payload["data"]


def _service(row: dict[str, Any], context: Context) -> dict[str, Any]:
    divisions: DivisionIndex = context.references
    id_no = resident_id(row["id_no"])
    street_code = divisions.street(row["street"])
    community_code = divisions.community(street_code, row["community"])
    served = row["service_time"]
    return {
        "service_id": f"{FEED}:{row['record_id']}",
        "source_feed": FEED,
        "source_record_id": row["record_id"],
        "person_key": context.person_key(id_no),
        "service_area": "health",
        "service_type": row["service_type"],
        "position_code": None,  # a health centre is not one of the district's positions
        "community_code": community_code,
        "street_code": street_code,
        "service_date": served.astimezone(SHANGHAI).date(),
        "service_time": served,
        "quantity": 1,
        "unit": "service",
        "amount_yuan": None,
        "status": row["status"],
        "provider_code": row["institution_code"],
        "source_updated_at": row["updated_at"],
    }


# The columns every core.fact_service row carries, whichever feed it comes from.
SERVICE_COLUMNS = (
    Column("service_id", "text"),
    Column("source_feed", "text"),
    Column("source_record_id", "text"),
    Column("person_key", "text"),
    Column("service_area", "text"),
    Column("service_type", "text"),
    Column("position_code", "text"),
    Column("community_code", "text"),
    Column("street_code", "text"),
    Column("service_date", "date"),
    Column("service_time", "timestamptz"),
    Column("quantity", "numeric"),
    Column("unit", "text"),
    Column("amount_yuan", "numeric"),
    Column("status", "text"),
    Column("provider_code", "text"),
    Column("source_updated_at", "timestamptz"),
)

SERVICE_RECORDS = Entity(
    feed=FEED,
    name="service_records",
    description="Community health service records: contracts, check-ups, follow-ups, home visits.",
    fetch=fetch_pages,
    records=_records,
    fields=(
        Field("record_id", "text", pattern=r"^\S{1,64}$"),
        Field("id_no", "text", personal=True),
        Field("name", "text", personal=True, nullable=True),
        Field("service_type", "text", values=SERVICE_TYPES),
        Field("service_time", "timestamptz"),
        Field("institution_code", "text", nullable=True),
        Field("institution_name", "text", required=False, nullable=True),
        Field("street", "text"),
        Field("community", "text"),
        Field("status", "text", values=("completed", "cancelled")),
        Field("updated_at", "timestamptz"),
        Field("details", "jsonb", required=False, nullable=True, raw_only=True),
    ),
    columns=SERVICE_COLUMNS,
    key=("service_id",),
    target="core.fact_service",
    transform=_service,
    references=("division_references",),
    index_references=index_divisions,
    uses_person_key=True,
    watermark_column="source_updated_at",
    latest_by="source_updated_at",
    max_rejection_rate=0.05,
)

ENTITIES = (SERVICE_RECORDS,)

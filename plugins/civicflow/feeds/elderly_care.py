"""The elderly-care feed: monthly Excel ledgers of canteen meals and day care, per street.

Interface: ``GET /ledgers?month=YYYY-MM`` lists the ledgers (file, street,
month, version, published_at); ``GET /ledgers/{file}`` is the workbook, behind
the header ``X-Api-Token`` (connection ``elderly_care_feed``, the password).

Each run lists the months from ``lookback_months`` (connection extra, default
3) before the run's month to the run's month, and takes, per street and month,
the newest version published after the watermark (the latest published_at
applied). Both sheets of a workbook are read: row 1 is a title, row 2 the
header, and the data end at the ``合计`` row. Dates come as Excel dates or text.

Rows become ``core.fact_service`` rows: canteen meals (service_area ``meals``,
quantity 1 meal, amount_yuan = subsidy + personal payment) and day-care visits
(``day_care``, quantity in hours). Rows carry no ids: a row is identified by
its ledger, version, sheet and row number, and publishing a ledger replaces
every row of earlier versions of that street and month, in the merge's one
transaction.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import logging
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from civicflow.feeds.health import SERVICE_COLUMNS
from civicflow.feeds.positions import DivisionIndex, FeedFormatError
from civicflow.identity import resident_id
from civicflow.spec import Column, Context, Entity, Field, Reject, Window

if TYPE_CHECKING:  # requests is imported by the tasks, never at DAG parse
    from civicflow.httpclient import FeedClient, Fetched

log = logging.getLogger(__name__)

FEED = "elderly_care"
LOOKBACK_MONTHS = 3
TOTAL_ROW = "合计"
# sheet -> (service_area, the headers the interface gives it)
SHEETS = {
    "长者饭堂": (
        "meals",
        (
            "日期",
            "饭堂名称",
            "身份证号",
            "姓名",
            "餐次",
            "就餐方式",
            "补贴金额(元)",
            "个人支付(元)",
        ),
    ),
    "日间照料": (
        "day_care",
        ("日期", "服务中心", "身份证号", "姓名", "服务时长(小时)", "服务项目"),
    ),
}
MEALS = {"早餐": "breakfast", "午餐": "lunch", "晚餐": "dinner"}
DINING = {"堂食": "eat_in", "配送上门": "delivered"}


# --- extraction ---------------------------------------------------------------------------------


def months(window: Window) -> list[str]:
    """``YYYY-MM`` from ``lookback_months`` before the run's last day's month to that month."""
    back = int(window.options.get("lookback_months", LOOKBACK_MONTHS))
    year, month = window.end_date.year, window.end_date.month
    out = []
    for _ in range(back + 1):
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return out[::-1]


def due_ledgers(listed: list[dict[str, Any]], watermark: str | None) -> list[dict[str, Any]]:
    """Per street and month, the newest version, if it was published after the watermark."""
    newest: dict[tuple[str, str], dict[str, Any]] = {}
    for ledger in listed:
        key = (ledger["month"], ledger["street"])
        if key not in newest or ledger["version"] > newest[key]["version"]:
            newest[key] = ledger
    since = dt.datetime.fromisoformat(watermark) if watermark else None
    return sorted(
        (x for x in newest.values() if since is None or x["published_at"] > since),
        key=lambda x: (x["month"], x["street"]),
    )


def _listing(client: FeedClient, month: str) -> list[dict[str, Any]]:
    from civicflow.httpclient import FeedError

    fetched = client.get_json("ledgers", {"month": month})
    items = fetched.document.get("ledgers") if isinstance(fetched.document, dict) else None
    if not isinstance(items, list):
        raise FeedError(FEED, fetched.url, "expected an object with a 'ledgers' array")
    out = []
    for i, item in enumerate(items):
        try:
            published = dt.datetime.fromisoformat(item["published_at"])
            out.append(
                {
                    "file": str(item["file"]),
                    "street": str(item["street"]).strip(),
                    "month": str(item["month"]),
                    "version": int(item["version"]),
                    "published_at": published,
                }
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise FeedError(FEED, fetched.url, f"ledger {i} is incomplete: {exc!r}") from exc
        if published.tzinfo is None:
            raise FeedError(FEED, fetched.url, f"ledger {i}: published_at has no offset")
        if out[-1]["month"] != month:
            raise FeedError(FEED, fetched.url, f"ledger {i} is for month {out[-1]['month']}")
    return out


def fetch_ledgers(client: FeedClient, window: Window) -> Iterator[Fetched]:
    """The workbooks due: the newest version of each street-month published since the watermark."""
    from urllib.parse import quote

    listed = [ledger for month in months(window) for ledger in _listing(client, month)]
    due = due_ledgers(listed, window.watermark)
    log.info("%s: %d ledger(s) listed, %d due", FEED, len(listed), len(due))
    for ledger in due:
        yield client.download(
            f"ledgers/{quote(ledger['file'])}",
            meta={**ledger, "published_at": ledger["published_at"].isoformat()},
        )


# --- decoding -----------------------------------------------------------------------------------


def _cell(value: Any) -> Any:
    if isinstance(value, dt.datetime) and value.time() == dt.time():
        return value.date()
    return value


def _sheet_rows(book: Any, sheet: str) -> Iterator[list[Any]]:
    """A sheet's rows from A1, each cell as the ledger's fields take it.

    calamine gives every number as a float and an empty cell as "": a whole number becomes
    an int (a count, a 日期 serial without a date format) and an empty cell None.
    """
    for row in book.get_sheet_by_name(sheet).to_python(skip_empty_area=False):
        yield [
            None
            if value == "" and isinstance(value, str)
            else int(value)
            if isinstance(value, float) and value.is_integer()
            else value
            for value in row
        ]


def decode_ledger(body: bytes, meta: Mapping[str, Any]) -> dict[str, Any]:
    """Both sheets' data rows, keyed by the headers of both, with the ledger's own fields.

    The workbook is read with calamine (python-calamine, in Rust): openpyxl took a third of
    a district-year backfill's CPU reading ledgers, calamine about an eighth of that.
    """
    from openpyxl.utils.datetime import from_excel
    from python_calamine import CalamineError, CalamineWorkbook

    name = meta.get("file")
    try:
        book = CalamineWorkbook.from_filelike(io.BytesIO(body))
    except Exception as exc:  # calamine raises its own errors and zip errors alike
        raise FeedFormatError(f"{name}: not an Excel workbook ({type(exc).__name__})") from exc
    blank = dict.fromkeys({h for _, headers in SHEETS.values() for h in headers})
    records = []
    try:
        for sheet, (area, headers) in SHEETS.items():
            if sheet not in book.sheet_names:
                raise FeedFormatError(f"{name}: no sheet {sheet!r} (has {book.sheet_names})")
            rows = _sheet_rows(book, sheet)
            next(rows, None)  # row 1: the merged title
            header = [str(h).strip() if h is not None else "" for h in next(rows, ())]
            missing = [h for h in headers if h not in header]
            if missing:
                raise FeedFormatError(f"{name}, sheet {sheet}: no column(s) {', '.join(missing)}")
            totalled = False
            for number, row in enumerate(rows, start=3):
                first = str(row[0]).strip() if row and row[0] is not None else ""
                if first == TOTAL_ROW:
                    totalled = True
                    break
                if not any(v is not None and str(v).strip() for v in row):
                    continue
                values = blank.copy()
                for h, v in zip(header, row, strict=False):
                    if h:
                        values[h] = _cell(v)
                if isinstance(values["日期"], int | float):  # a date cell without a date format
                    # A serial that is no day stays a number, which parsing then refuses.
                    with contextlib.suppress(AttributeError, OverflowError, ValueError):
                        values["日期"] = from_excel(values["日期"]).date()
                records.append(
                    {
                        **values,
                        "ledger": name,
                        "sheet": area,
                        "row_number": number,
                        "street": meta["street"],
                        "month": meta["month"],
                        "version": meta["version"],
                        "published_at": meta["published_at"],
                    }
                )
            if not totalled:
                raise FeedFormatError(f"{name}, sheet {sheet}: no {TOTAL_ROW} row; truncated?")
    except CalamineError as exc:
        raise FeedFormatError(f"{name}: a sheet cannot be read ({exc})") from exc
    finally:
        book.close()
    return {"records": records}


def _records(document: Any) -> list[Mapping[str, Any]]:
    return document["records"]


# --- transform ----------------------------------------------------------------------------------


def ledger_batch(month: str, street_code: str) -> str:
    """What identifies a ledger across its versions (``source_batch``): month and street code."""
    return f"{month}:{street_code}"


def index_references(references: Mapping[str, list[dict[str, Any]]]) -> dict[str, Any]:
    by_name: dict[str, list[dict[str, Any]]] = {}
    for p in references["position_references"]:
        by_name.setdefault(p["position_name"].strip(), []).append(p)
    return {"divisions": DivisionIndex(references["division_references"]), "by_name": by_name}


def _service(row: dict[str, Any], context: Context) -> dict[str, Any]:
    references = context.references
    id_no = resident_id(row["id_no"])
    street_code = references["divisions"].street(row["street"])
    if f"{row['service_date']:%Y-%m}" != row["month"]:
        raise Reject(f"日期 {row['service_date']} is outside the ledger's month {row['month']}")
    batch = ledger_batch(row["month"], street_code)
    record_id = f"{batch}:v{row['version']}:{row['sheet']}:{row['row_number']}"
    if row["sheet"] == "meals":
        venue = row["canteen"]
        if row["meal"] is None or row["dining"] is None:
            raise Reject("a meal without 餐次 or 就餐方式")
        service_type = f"{MEALS[row['meal']]}_{DINING[row['dining']]}"
        quantity, unit = 1, "meal"
        amount = (row["subsidy_yuan"] or 0) + (row["paid_yuan"] or 0)
    else:
        venue = row["centre"]
        if not row["hours"] or row["hours"] <= 0:
            raise Reject("a day-care visit without 服务时长")
        service_type = row["item"] or "day_care"
        quantity, unit, amount = row["hours"], "hour", None
    # A venue that is one of the district's registered positions is placed there.
    places = [
        p for p in references["by_name"].get(venue or "", []) if p["street_code"] == street_code
    ]
    place = places[0] if len(places) == 1 else None
    return {
        "service_id": f"{FEED}:{record_id}",
        "source_feed": FEED,
        "source_record_id": record_id,
        "person_key": context.person_key(id_no),
        "service_area": row["sheet"],
        "service_type": service_type,
        "position_code": place["position_code"] if place else None,
        "community_code": place["community_code"] if place else None,
        "street_code": street_code,
        "service_date": row["service_date"],
        "service_time": None,
        "quantity": quantity,
        "unit": unit,
        "amount_yuan": amount,
        "status": "completed",
        "provider_code": None,
        "source_updated_at": row["published_at"],
        "source_batch": batch,
        "source_version": row["version"],
    }


# --- publishing: a ledger's newest version replaces the earlier ones ---------------------------


def publish_ledgers(conn: Any, entity: Entity, load_id: str) -> tuple[int, int, int]:
    """Replace earlier versions' rows and insert this batch's, in the merge's transaction.

    Returns (rows inserted, rows of earlier versions removed, staged rows not inserted because
    the warehouse already holds that version or a newer one).
    """
    from civicflow.pipeline import is_replay, references
    from civicflow.warehouse import sql_file

    if is_replay(conn, load_id):
        return publish_replayed_rows(conn, load_id)
    divisions: DivisionIndex = references(conn, entity)["divisions"]
    ledgers = conn.execute(
        "select meta ->> 'month', meta ->> 'street', (meta ->> 'version')::int, meta ->> 'file' "
        "from raw.payload where load_id = %s order by payload_id",
        (load_id,),
    ).fetchall()
    removed = 0
    for month, street, version, file in ledgers:
        try:
            batch = ledger_batch(month, divisions.street(street))
        except Reject:
            log.warning(
                "%s: %s names an unknown street %r; its rows were quarantined", FEED, file, street
            )
            continue
        removed += conn.execute(
            "delete from core.fact_service where source_feed = %s and source_batch = %s "
            "and source_version < %s",
            (FEED, batch, version),
        ).rowcount
    staged = conn.execute(
        "select count(*) from staging.elderly_care__ledgers where load_id = %s", (load_id,)
    ).fetchone()[0]
    inserted = conn.execute(
        sql_file("publish/fact_service_ledger_rows"), {"load_id": load_id}
    ).rowcount
    return inserted, removed, staged - inserted


# --- a steward's replay of quarantined rows -----------------------------------------------------


def replay_superseded(conn: Any, rows: Mapping[int, Mapping[str, Any]]) -> set[int]:
    """Replayed rows whose ledger the warehouse, or the replay itself, has in a newer version."""
    batches = sorted({r["source_batch"] for r in rows.values()})
    newest = dict(
        conn.execute(
            "select source_batch, max(source_version) from core.fact_service "
            "where source_feed = %s and source_batch = any(%s) group by 1",
            (FEED, batches),
        ).fetchall()
    )
    for row in rows.values():
        newest[row["source_batch"]] = max(newest.get(row["source_batch"], 0), row["source_version"])
    return {
        index
        for index, row in rows.items()
        if newest.get(row["source_batch"], 0) > row["source_version"]
    }


def publish_replayed_rows(conn: Any, load_id: str) -> tuple[int, int, int]:
    """Add replayed rows to their ledger version; it replaces older versions, as a ledger does.

    Returns (rows inserted, rows of older versions removed, staged rows already there).
    """
    from civicflow.warehouse import sql_file

    removed = conn.execute(
        "delete from core.fact_service f using (select distinct source_batch, source_version "
        "from staging.elderly_care__ledgers where load_id = %s) s "
        "where f.source_feed = %s and f.source_batch = s.source_batch "
        "and f.source_version < s.source_version",
        (load_id, FEED),
    ).rowcount
    staged = conn.execute(
        "select count(*) from staging.elderly_care__ledgers where load_id = %s", (load_id,)
    ).fetchone()[0]
    inserted = conn.execute(
        sql_file("publish/fact_service_ledger_replayed_rows"), {"load_id": load_id}
    ).rowcount
    return inserted, removed, staged - inserted


LEDGERS = Entity(
    feed=FEED,
    name="ledgers",
    description="Monthly ledgers of canteen meals and day-care visits, one per street and month.",
    fetch=fetch_ledgers,
    decode=decode_ledger,
    records=_records,
    fields=(
        Field("ledger", "text"),
        Field("sheet", "text", values=("meals", "day_care")),
        Field("row_number", "integer", min=3),
        Field("street", "text"),
        Field("month", "text", pattern=r"^\d{4}-(0[1-9]|1[0-2])$"),
        Field("version", "integer", min=1),
        Field("published_at", "timestamptz"),
        Field("service_date", "date", source="日期"),
        Field("canteen", "text", source="饭堂名称", nullable=True),
        Field("centre", "text", source="服务中心", nullable=True),
        Field("id_no", "text", source="身份证号", personal=True),
        Field("name", "text", source="姓名", personal=True, nullable=True),
        Field("meal", "text", source="餐次", nullable=True, values=tuple(MEALS)),
        Field("dining", "text", source="就餐方式", nullable=True, values=tuple(DINING)),
        Field("subsidy_yuan", "numeric", source="补贴金额(元)", nullable=True, min=0, max=200),
        Field("paid_yuan", "numeric", source="个人支付(元)", nullable=True, min=0, max=200),
        Field("hours", "numeric", source="服务时长(小时)", nullable=True, min=0, max=24),
        Field("item", "text", source="服务项目", nullable=True),
    ),
    columns=(*SERVICE_COLUMNS, Column("source_batch", "text"), Column("source_version", "integer")),
    key=("service_id",),
    target="core.fact_service",
    transform=_service,
    publish=publish_ledgers,
    references=("division_references", "position_references"),
    index_references=index_references,
    uses_person_key=True,
    watermark_column="source_updated_at",
)

ENTITIES = (LEDGERS,)

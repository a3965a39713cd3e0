"""The civil-affairs feed: daily CSV snapshots of the register, kept as person history.

Interface: ``GET /exports/index.json`` lists the snapshots with their
snapshot_date, row count, sha256 and size; ``GET /exports/{name}`` is the file
(GB18030, CRLF, RFC 4180), behind HTTP Basic (connection ``civil_affairs_feed``).

Each run takes the snapshots newer than the last one applied (the watermark in
``meta.feed_state``) and not after the run's last day, oldest first, so a
missed day is caught up; the very first run takes only the newest. A file
whose sha256 or size differs from the index fails the run and nothing is
loaded. The snapshots become ``core.dim_person`` as type-2 history, applied in
date order in the merge transaction:

- a person whose community, categories or status changed: the current version
  is closed (valid_to = the snapshot's date) and a new one opened;
- a person missing from the snapshot: the current version is closed;
- a person whose row was quarantined although the ID number is valid (an
  unknown community spelling, say): left as they were, neither changed nor
  ended;
- a snapshot that would end more than ``max_departure_share`` (connection
  extra, default 0.2) of the current registrations is refused: more likely a
  truncated export than a fifth of the register moving away in a day.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from civicflow.feeds.positions import DivisionIndex, FeedFormatError, index_divisions
from civicflow.identity import birth_date_of, gender_of, resident_id
from civicflow.spec import Column, Context, Entity, Field, Reject, Window

if TYPE_CHECKING:  # requests and psycopg are imported by the tasks, never at DAG parse
    from civicflow.httpclient import FeedClient, Fetched

log = logging.getLogger(__name__)

FEED = "civil_affairs"
INDEX_PATH = "exports/index.json"
CATEGORIES = ("高龄老人", "独居老人", "空巢老人", "低保对象", "特困人员", "残疾人", "优抚对象")
STATUSES = ("在册", "迁出", "死亡")
MAX_SNAPSHOTS_PER_RUN = 7
MAX_DEPARTURE_SHARE = 0.2


# --- extraction ---------------------------------------------------------------------------------


def _exports(client: FeedClient) -> tuple[str, list[dict[str, Any]]]:
    from civicflow.httpclient import FeedError

    fetched = client.get_json(INDEX_PATH)
    exports = fetched.document.get("exports") if isinstance(fetched.document, dict) else None
    if not isinstance(exports, list):
        raise FeedError(FEED, fetched.url, "expected an object with an 'exports' array")
    out = []
    for i, item in enumerate(exports):
        try:
            out.append(
                {
                    "name": str(item["name"]),
                    "snapshot_date": dt.date.fromisoformat(item["snapshot_date"]),
                    "rows": int(item["rows"]),
                    "sha256": str(item["sha256"]),
                    "size": int(item["size"]) if item.get("size") is not None else None,
                }
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise FeedError(
                FEED, fetched.url, f"export {i} lacks a valid {exc.args[0] if exc.args else exc}"
            ) from exc
    dates = [e["snapshot_date"] for e in out]
    if len(set(dates)) != len(dates):
        doubled = sorted({d.isoformat() for d in dates if dates.count(d) > 1})
        raise FeedError(FEED, fetched.url, f"two exports for snapshot date(s) {doubled}")
    return fetched.url, sorted(out, key=lambda e: e["snapshot_date"])


def pending_snapshots(exports: list[dict[str, Any]], window: Window) -> list[dict[str, Any]]:
    """The snapshots to apply: newer than the watermark, not after the run's last day, in order.

    Without a watermark only the newest is taken (the register's history starts there).
    """
    due = [e for e in exports if e["snapshot_date"] <= window.end_date]
    if window.watermark:
        applied = dt.date.fromisoformat(window.watermark[:10])
        due = [e for e in due if e["snapshot_date"] > applied]
    else:
        due = due[-1:]
    limit = int(window.options.get("max_snapshots_per_run", MAX_SNAPSHOTS_PER_RUN))
    if len(due) > limit:
        log.warning(
            "%s: %d snapshots are due; applying the oldest %d, the rest in the next runs",
            FEED,
            len(due),
            limit,
        )
    return due[:limit]


def fetch_snapshots(client: FeedClient, window: Window) -> Iterator[Fetched]:
    """Every due snapshot file, each checked against the index's sha256 and size."""
    _, exports = _exports(client)
    due = pending_snapshots(exports, window)
    log.info(
        "%s: %d snapshot(s) due: %s",
        FEED,
        len(due),
        ", ".join(e["snapshot_date"].isoformat() for e in due) or "none",
    )
    for export in due:
        yield client.download(
            f"exports/{export['name']}",
            meta={
                "name": export["name"],
                "snapshot_date": export["snapshot_date"].isoformat(),
                "rows": export["rows"],
                "sha256": export["sha256"],
                # the run's policy travels with the batch to the merge that applies it
                "max_departure_share": float(
                    window.options.get("max_departure_share", MAX_DEPARTURE_SHARE)
                ),
            },
            sha256=export["sha256"],
            size=export["size"],
        )


# --- decoding -----------------------------------------------------------------------------------


def decode_snapshot(body: bytes, meta: Mapping[str, Any]) -> dict[str, Any]:
    """A snapshot file as rows keyed by the header, each carrying the snapshot's date."""
    try:
        text = body.decode("gb18030")
    except UnicodeDecodeError as exc:
        raise FeedFormatError(f"{meta.get('name')}: not GB18030 text ({exc})") from exc
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""), strict=True)
    try:
        header = [h.strip() for h in next(reader)]
        rows = [r for r in reader if any(cell.strip() for cell in r)]
    except StopIteration:
        raise FeedFormatError(f"{meta.get('name')}: the file is empty") from None
    except csv.Error as exc:
        raise FeedFormatError(
            f"{meta.get('name')} line {reader.line_num}: not RFC 4180 CSV ({exc})"
        ) from exc
    if len(rows) != meta.get("rows", len(rows)):
        raise FeedFormatError(
            f"{meta.get('name')}: {len(rows)} data rows, the index says {meta['rows']}"
        )
    snapshot = meta["snapshot_date"]
    records = []
    for number, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise FeedFormatError(
                f"{meta.get('name')} line {number}: {len(row)} cells under {len(header)} headers"
            )
        records.append({**dict(zip(header, row, strict=True)), "snapshot_date": snapshot})
    return {"name": meta.get("name"), "records": records}


def _records(document: Any) -> list[Mapping[str, Any]]:
    return document["records"]


# --- transform ----------------------------------------------------------------------------------


def categories(value: str | None) -> list[str]:
    """The category set in the register's fixed order; ``、`` and ``;`` both separate."""
    if not value:
        return []
    return list(_categories(value))


# A register spells its category sets a few hundred ways: each is read once. Refusals
# (Reject) are not cached.
@lru_cache(maxsize=4096)
def _categories(value: str) -> tuple[str, ...]:
    named = {part.strip() for part in value.replace("；", ";").replace("、", ";").split(";")}
    named.discard("")
    unknown = named - set(CATEGORIES)
    if unknown:
        raise Reject(f"unknown category {sorted(unknown)[0]!r}")
    return tuple(c for c in CATEGORIES if c in named)


GENDERS = {"男": "M", "女": "F"}


def _person(row: dict[str, Any], context: Context) -> dict[str, Any]:
    divisions: DivisionIndex = context.references
    id_no = resident_id(row["id_no"])
    key = context.person_key(id_no)
    try:
        born = birth_date_of(id_no)
        if row["birth_date"] != born:
            raise Reject("出生日期 differs from the ID number's birth date")
        gender = gender_of(id_no)
        if GENDERS[row["gender"]] != gender:
            raise Reject("性别 differs from the ID number")
        street_code = divisions.street(row["street"])
        community_code = divisions.community(street_code, row["community"])
        kinds = categories(row["categories"])
    except Reject as exc:
        raise Reject(exc.reason, subject=key) from None
    return {
        "snapshot_date": row["snapshot_date"],
        "person_key": key,
        "gender": gender,
        "birth_year": born.year,
        "street_code": street_code,
        "community_code": community_code,
        "categories": kinds,
        "registry_status": row["registry_status"],
        "source_updated_at": row["updated_at"],
    }


# --- publishing: type-2 history -----------------------------------------------------------------


def publish_history(conn: Any, entity: Entity, load_id: str) -> tuple[int, int, int]:
    """Apply the batch's snapshots to ``core.dim_person`` in date order.

    Returns (versions opened, versions closed, staged rows whose version stayed as it was).
    """
    from civicflow.pipeline import BatchError, is_replay
    from civicflow.warehouse import sql_file

    if is_replay(conn, load_id):
        return publish_replayed_history(conn, load_id)
    state = conn.execute(
        "select watermark from meta.feed_state where feed = %s and entity = %s",
        (entity.feed, entity.name),
    ).fetchone()
    applied = dt.date.fromisoformat(state[0][:10]) if state and state[0] else None
    policy = conn.execute(
        "select max((meta ->> 'max_departure_share')::numeric) from raw.payload where load_id = %s",
        (load_id,),
    ).fetchone()[0]
    share = float(policy) if policy is not None else MAX_DEPARTURE_SHARE
    days = [
        row[0]
        for row in conn.execute(
            "select distinct (meta ->> 'snapshot_date')::date from raw.payload "
            "where load_id = %s order by 1",
            (load_id,),
        )
    ]
    opened = closed = unchanged = 0
    for day in days:
        staged = conn.execute(
            "select count(*) from staging.civil_affairs__register "
            "where load_id = %s and snapshot_date = %s",
            (load_id, day),
        ).fetchone()[0]
        if applied is not None and day <= applied:
            log.warning("%s: snapshot %s was applied before; skipped", FEED, day)
            unchanged += staged
            continue
        params = {"load_id": load_id, "day": day}
        current = conn.execute("select count(*) from core.dim_person where is_current").fetchone()
        ended = conn.execute(sql_file("publish/dim_person_close"), params).fetchall()
        departing = sum(1 for (still_registered,) in ended if not still_registered)
        if current[0] and departing > share * current[0]:
            raise BatchError(  # the merge's transaction is rolled back: nothing is published
                entity,
                load_id,
                f"snapshot {day} would end {departing} of {current[0]} current registrations "
                f"({departing / current[0]:.1%}), more than the {share:.0%} allowed: a truncated "
                "export? Nothing was published; set max_departure_share in the connection's "
                "extra to accept it.",
            )
        day_closed = len(ended)
        day_opened = conn.execute(sql_file("publish/dim_person_open"), params).rowcount
        log.info(
            "%s: snapshot %s: %d versions opened, %d closed, %d departures",
            FEED,
            day,
            day_opened,
            day_closed,
            departing,
        )
        opened += day_opened
        closed += day_closed
        unchanged += staged - day_opened
        applied = day
    return opened, closed, unchanged


# --- a steward's replay of quarantined rows -----------------------------------------------------


def _applied_snapshot(conn: Any) -> dt.date | None:
    state = conn.execute(
        "select watermark from meta.feed_state where feed = %s and entity = 'register'", (FEED,)
    ).fetchone()
    return dt.date.fromisoformat(state[0][:10]) if state and state[0] else None


def replay_superseded(conn: Any, rows: Mapping[int, Mapping[str, Any]]) -> set[int]:
    """The replayed rows that a newer row of the register has overtaken.

    Only rows of the snapshot last applied can still be applied: a later snapshot shows the
    person again (applied, or quarantined and replayable in its turn). Of those, a row is
    overtaken when the same snapshot opened a version of the person from a row at least as new.
    """
    applied = _applied_snapshot(conn)
    current = [r["person_key"] for r in rows.values() if r["snapshot_date"] == applied]
    opened = dict(
        conn.execute(
            "select person_key, source_updated_at from core.dim_person "
            "where valid_from = %s and person_key = any(%s)",
            (applied, current),
        ).fetchall()
    )
    return {
        index
        for index, row in rows.items()
        if row["snapshot_date"] != applied
        or (
            row["person_key"] in opened
            and opened[row["person_key"]] is not None
            and opened[row["person_key"]] >= row["source_updated_at"]
        )
    }


def publish_replayed_history(conn: Any, load_id: str) -> tuple[int, int, int]:
    """Apply replayed rows of the snapshot last applied, as that snapshot would have.

    A person without a current version gets one from the snapshot's date; a person whose
    version differs has it closed and a new one opened (or corrected in place when that very
    snapshot opened it). Nobody else is touched. Returns (opened, closed or corrected,
    unchanged), as :func:`publish_history` does.
    """
    from civicflow.warehouse import sql_file

    opened = closed = corrected = 0
    days = [
        row[0]
        for row in conn.execute(
            "select distinct snapshot_date from staging.civil_affairs__register "
            "where load_id = %s order by 1",
            (load_id,),
        )
    ]
    for day in days:
        params = {"load_id": load_id, "day": day}
        closed += conn.execute(sql_file("publish/dim_person_replayed_close"), params).rowcount
        corrected += conn.execute(sql_file("publish/dim_person_replayed_correct"), params).rowcount
        opened += conn.execute(sql_file("publish/dim_person_open"), params).rowcount
    staged = conn.execute(
        "select count(*) from staging.civil_affairs__register where load_id = %s", (load_id,)
    ).fetchone()[0]
    log.info(
        "%s: replay %s: %d versions opened, %d closed, %d corrected",
        FEED,
        load_id,
        opened,
        closed,
        corrected,
    )
    return opened, closed + corrected, staged - opened - corrected


REGISTER = Entity(
    feed=FEED,
    name="register",
    description="The register of residents in the target groups, as daily full snapshots.",
    fetch=fetch_snapshots,
    decode=decode_snapshot,
    records=_records,
    fields=(
        Field("snapshot_date", "date"),
        Field("id_no", "text", source="身份证号", personal=True),
        Field("name", "text", source="姓名", personal=True, nullable=True),
        Field("gender", "text", source="性别", values=("男", "女")),
        Field("birth_date", "date", source="出生日期"),
        Field("street", "text", source="街道"),
        Field("community", "text", source="社区"),
        Field("address", "text", source="居住地址", personal=True, nullable=True),
        Field("phone", "text", source="联系电话", personal=True, nullable=True),
        Field("categories", "text", source="人员类别", nullable=True),
        Field("registry_status", "text", source="登记状态", values=STATUSES),
        Field("updated_at", "timestamptz", source="更新时间"),
    ),
    columns=(
        Column("snapshot_date", "date"),
        Column("person_key", "text"),
        Column("gender", "text"),
        Column("birth_year", "integer"),
        Column("street_code", "text"),
        Column("community_code", "text"),
        Column("categories", "text[]"),
        Column("registry_status", "text"),
        Column("source_updated_at", "timestamptz"),
    ),
    key=("snapshot_date", "person_key"),
    target="core.dim_person",
    transform=_person,
    publish=publish_history,
    references=("division_references",),
    index_references=index_divisions,
    uses_person_key=True,
    watermark_column="snapshot_date",
    latest_by="source_updated_at",
    max_rejection_rate=0.05,
    reuse_unchanged=True,
)

ENTITIES = (REGISTER,)

"""Write, audit, publish: the three steps every batch of every feed goes through.

``extract`` fetches an entity's payloads and lands them in ``raw``; ``validate``
parses them, runs the expectation suite and writes accepted rows to
``staging`` and rejected rows to ``quarantine``; ``merge`` publishes the staged
rows into ``core`` in one transaction with the audit row and the feed state,
checking there that every source row is accounted for. Each step is safe to
retry. A steward's replay (``civicflow.replay``) sends quarantined rows through
``judge``, ``stage`` and ``publish_batch`` again, as a batch of its own that moves
no watermark. Nothing here imports Airflow.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import hashlib
import hmac
import json
import logging
import sys
import uuid
from collections import Counter
from collections.abc import Collection, Iterator, Mapping
from dataclasses import asdict, dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from civicflow.config import FeedSettings
from civicflow.httpclient import FeedClient, FeedError, client_for
from civicflow.parse import extra_columns, missing_columns, parse_record, without_values
from civicflow.spec import SQL_TYPES, Context, Entity, Reject, Window
from civicflow.warehouse import connect, migrate, sql_file

log = logging.getLogger(__name__)


class BatchError(RuntimeError):
    """A batch that cannot be published; the message names the feed, entity, load and reason."""

    def __init__(self, entity: Entity, load_id: str, reason: str):
        self.entity, self.load_id, self.reason = entity, load_id, reason
        super().__init__(f"{entity.qualified_name} (load {load_id}): {reason}")


class SchemaDriftError(BatchError):
    pass


class BatchRejected(BatchError):
    pass


@dataclass(frozen=True)
class BatchSummary:
    load_id: str
    feed: str
    entity: str
    status: str
    source_rows: int = 0
    accepted_rows: int = 0
    quarantined_rows: int = 0
    duplicate_rows: int = 0
    inserted_rows: int | None = None
    updated_rows: int | None = None
    unchanged_rows: int | None = None
    watermark: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_migrated: set[str] = set()


def open_warehouse(url: str) -> psycopg.Connection:
    """A connection to the warehouse, migrated to the current schema once per process.

    It is in autocommit mode: every change happens inside an explicit ``transaction()``.
    """
    conn = connect(url, autocommit=True)
    if url not in _migrated:
        migrate(conn)
        _migrated.add(url)
    return conn


def _fail(conn: psycopg.Connection, load_id: str, status: str, error: str) -> None:
    conn.rollback()
    with conn.transaction():
        conn.execute(
            "update meta.load_audit set status = %s, error = %s, finished_at = now() "
            "where load_id = %s",
            (status, error[:2000], load_id),
        )


def is_replay(conn: psycopg.Connection, load_id: str) -> bool:
    """Whether the batch is a steward's replay of quarantined rows (nothing was fetched for it)."""
    row = conn.execute(
        "select replay_of is not null from meta.load_audit where load_id = %s", (load_id,)
    ).fetchone()
    return bool(row and row[0])


# --- extract -----------------------------------------------------------------------------------


def extract(
    entity: Entity,
    feed: FeedSettings,
    warehouse_url: str,
    start_date: dt.date,
    end_date: dt.date,
    run_id: str | None = None,
    client: FeedClient | None = None,
) -> str:
    """Fetch the entity's payloads for the window and land them in ``raw``; returns the load id."""
    load_id = str(uuid.uuid4())
    client = client or client_for(feed)
    with open_warehouse(warehouse_url) as conn:
        with conn.transaction():
            state = conn.execute(
                "select watermark from meta.feed_state where feed = %s and entity = %s",
                (entity.feed, entity.name),
            ).fetchone()
            conn.execute(
                "insert into meta.load_audit (load_id, feed, entity, run_id, status) "
                "values (%s, %s, %s, %s, 'extracting')",
                (load_id, entity.feed, entity.name, run_id),
            )
        window = Window(start_date, end_date, state[0] if state else None, feed.options)
        if entity.listing_of and run_id:
            try:
                if _copy_listing(conn, entity, window, run_id, load_id):
                    return load_id
            except Exception as exc:
                _fail(conn, load_id, "failed", f"{type(exc).__name__}: {exc}")
                raise
        attempts_before = client.attempts
        landed = 0
        try:
            # Each payload is landed as it arrives, never all of them in memory; the
            # transaction publishes the lot or, if a fetch fails, none of them.
            with conn.transaction(), conn.cursor() as cur:
                for f in _fetch(entity, client, window):
                    cur.execute(
                        "insert into raw.payload (load_id, feed, entity, request_url, "
                        "content_type, size_bytes, sha256, body, meta) "
                        "values (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                        (
                            load_id,
                            entity.feed,
                            entity.name,
                            f.url,
                            f.content_type,
                            len(f.body),
                            hashlib.sha256(f.body).hexdigest(),
                            f.body,
                            Jsonb(dict(f.meta)),
                        ),
                    )
                    landed += 1
                cur.execute(
                    "update meta.load_audit set status = 'extracted', payloads = %s, "
                    "http_attempts = %s where load_id = %s",
                    (landed, client.attempts - attempts_before, load_id),
                )
        except FeedError as exc:
            _fail(conn, load_id, "failed", str(exc))
            raise
    log.info("%s: landed %d payloads as load %s", entity.qualified_name, landed, load_id)
    return load_id


def _copy_listing(
    conn: psycopg.Connection, entity: Entity, window: Window, run_id: str, load_id: str
) -> bool:
    """Land a copy of the pages ``entity.listing_of`` landed in this run, if they will do.

    They will when they were listed from an ``updated_since`` no later than this entity's
    own: they hold every record this entity's listing would (and maybe older ones, which
    merge as unchanged). Its watermark then comes from the rows of that listing, so what
    changed since is listed next time. A year of volunteer hours is 500 pages at the
    platform's 10 requests a second: 71 s a backfill, against a few seconds to copy them.
    """
    from urllib.parse import parse_qs, urlsplit

    from civicflow.feeds.health import updated_since

    source = conn.execute(
        "select load_id, payloads from meta.load_audit where feed = %s and entity = %s "
        "and run_id = %s and payloads is not null order by started_at desc limit 1",
        (entity.feed, entity.listing_of, run_id),
    ).fetchone()
    if source is None:
        return False
    urls = conn.execute(
        "select distinct request_url from raw.payload where load_id = %s", (source[0],)
    ).fetchall()
    listed_since = {
        value
        for (url,) in urls
        for value in parse_qs(urlsplit(url).query).get("updated_since", [None])
    }
    mine = dt.datetime.fromisoformat(updated_since(window))
    if len(listed_since) != 1 or None in listed_since:
        return False
    theirs = dt.datetime.fromisoformat(listed_since.pop())
    if theirs > mine:
        return False
    with conn.transaction():
        copied = conn.execute(
            "insert into raw.payload (load_id, feed, entity, request_url, content_type, "
            "size_bytes, sha256, body, meta) select %s, feed, %s, request_url, content_type, "
            "size_bytes, sha256, body, meta || %s from raw.payload where load_id = %s "
            "order by payload_id",
            (load_id, entity.name, Jsonb({"listed_by_load": str(source[0])}), source[0]),
        ).rowcount
        if copied != source[1]:
            raise BatchError(
                entity, load_id, f"load {source[0]} landed {source[1]} payloads, {copied} copied"
            )
        conn.execute(
            "update meta.load_audit set status = 'extracted', payloads = %s, "
            "http_attempts = 0 where load_id = %s",
            (copied, load_id),
        )
    log.info(
        "%s: landed a copy of the %d payloads %s listed from %s (load %s) as load %s",
        entity.qualified_name,
        copied,
        entity.listing_of,
        theirs.isoformat(),
        source[0],
        load_id,
    )
    return True


def _fetch(entity: Entity, client: FeedClient, window: Window) -> Any:
    if entity.fetch is not None:
        yield from entity.fetch(client, window)
        return
    for request in entity.requests(window):
        yield client.get_json(request.path, request.params)


# --- validate ----------------------------------------------------------------------------------


# A batch is judged and staged this many source records at a time, so that a year of a
# feed (1.5 million health records) never sits in memory whole: records, typed rows and
# GX's frame of one chunk at a time, whatever the batch's size.
CHUNK_RECORDS = 50_000


@dataclass
class _Verdicts:
    records: list[Any]  # the chunk's source records; index ``first_index`` is records[0]
    accepted: dict[int, dict[str, Any]]  # source index -> staged row
    rejected: dict[int, list[str]]  # source index -> reasons
    subjects: dict[int, str]  # source index -> person_key of a rejected row, where known
    failed_expectations: dict[int, list[str]]
    duplicates: int
    outcomes: list[Any]
    extra_columns: list[str]
    missing_columns: list[str] = dataclass_field(default_factory=list)
    first_index: int = 0
    digests: list[bytes] | None = None  # each record's digest, for entities that reuse rows

    def record(self, index: int) -> Any:
        return self.records[index - self.first_index]


def _payloads(conn: psycopg.Connection, entity: Entity, load_id: str) -> Iterator[list[Any]]:
    """The batch's source records, a payload's at a time, read through a server-side cursor.

    Needs an open transaction (the cursor lives in it).
    """
    with conn.cursor(name=f"payloads_{load_id.replace('-', '')}") as cur:
        cur.itersize = 4  # payloads are pages of hundreds of records, or whole workbooks
        cur.execute(
            "select request_url, body, meta from raw.payload where load_id = %s "
            "order by payload_id",
            (load_id,),
        )
        for url, body, meta in cur:
            try:
                if entity.decode is not None:
                    document = entity.decode(bytes(body), meta)
                else:
                    document = json.loads(bytes(body))
                del body
                records = list(entity.records(document))
            except ValueError as exc:
                raise BatchError(
                    entity, load_id, f"payload of {url} cannot be read: {exc}"
                ) from exc
            yield records


def _chunks(payloads: Iterator[list[Any]], size: int) -> Iterator[list[Any]]:
    """The records of the payloads in chunks of at least ``size`` (a payload is never split)."""
    chunk: list[Any] = []
    for records in payloads:
        chunk.extend(records)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def reference_rows(conn: psycopg.Connection, entity: Entity) -> dict[str, list[dict[str, Any]]]:
    """The rows of the entity's reference queries, by query name."""
    loaded = {}
    for name in entity.references:
        with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
            loaded[name] = cur.execute(sql_file(f"queries/{name}")).fetchall()
    return loaded


def references(conn: psycopg.Connection, entity: Entity) -> Any:
    """The entity's reference data from the warehouse, indexed as its transforms receive it."""
    if not entity.index_references:
        return None
    return entity.index_references(reference_rows(conn, entity))


def judge(
    entity: Entity,
    records: list[Any],
    context: Context,
    load_id: str | None = None,
    *,
    first_index: int = 0,
    suite: Any = None,
    skip: Collection[int] = (),
) -> _Verdicts:
    """Every record's verdict: staged, quarantined with reasons, or a duplicate.

    ``records`` may be one chunk of a batch whose first record has the source index
    ``first_index``; ``suite`` (a :class:`civicflow.validation.SuiteRun`) then gathers the
    batch's GX result across chunks. Without one, the records are the whole batch and its
    GX result is kept under ``load_id`` (when given) for the Data Docs. Records whose
    source index is in ``skip`` already have a verdict (see :class:`_Memo`): no verdict is
    given here, though they still count for the extra and missing columns.
    """
    with _no_cycle_collection():
        return _judge(entity, records, context, load_id, first_index, suite, skip)


@contextlib.contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Judging a chunk makes millions of objects and no reference cycles, yet Python's cycle
    collector walked them again and again: as long as the parsing itself."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _judge(
    entity: Entity,
    records: list[Any],
    context: Context,
    load_id: str | None,
    first_index: int,
    suite: Any,
    skip: Collection[int],
) -> _Verdicts:
    from civicflow.validation import validate_rows

    rejected: dict[int, list[str]] = {}
    parsed: list[tuple[int, dict[str, Any]]] = []
    for index, record in enumerate(records, start=first_index):
        if index in skip:
            continue
        typed, reasons = parse_record(entity, record)
        if reasons:
            rejected[index] = reasons
        else:
            parsed.append((index, typed))

    rows = [typed for _, typed in parsed]
    outcomes = validate_rows(entity, rows, load_id) if suite is None else suite.check(rows)
    failed: dict[int, list[str]] = {}
    for outcome in outcomes:
        for position in outcome.failing_rows:
            failed.setdefault(parsed[position][0], []).append(outcome.label)
    for index, labels in failed.items():
        rejected[index] = [f"failed {label}" for label in labels]

    accepted: dict[int, dict[str, Any]] = {}
    subjects: dict[int, str] = {}
    for index, typed in parsed:
        if index in rejected:
            continue
        try:
            accepted[index] = entity.transform(typed, context)
        except Reject as exc:
            rejected[index] = [exc.reason]
            if exc.subject:
                subjects[index] = exc.subject
    del parsed

    # The same key twice in one batch: the later record wins (by ``latest_by`` when the
    # entity has one, else by position), the other is a duplicate. Across the chunks of a
    # batch, staging settles it the same way (``_BatchWriter.finish``).
    latest: dict[tuple, int] = {}
    for index, row in accepted.items():
        key = tuple(row[k] for k in entity.key)
        if entity.latest_by and key in latest:
            kept = accepted[latest[key]][entity.latest_by]
            if kept is not None and (row[entity.latest_by] is None or row[entity.latest_by] < kept):
                continue
        latest[key] = index
    keep = set(latest.values())
    duplicates = len(accepted) - len(keep)
    accepted = {i: row for i, row in accepted.items() if i in keep}
    return _Verdicts(
        records,
        accepted,
        rejected,
        subjects,
        failed,
        duplicates,
        outcomes,
        extra_columns(entity, records),
        missing_columns(entity, records),
        first_index,
    )


def _ensure_staging_table(conn: psycopg.Connection, entity: Entity) -> sql.Composed:
    table = sql.Identifier("staging", entity.staging_table)
    wanted = [("load_id", "uuid"), ("source_index", "integer")] + [
        (c.name, SQL_TYPES[c.type]) for c in entity.columns
    ]
    if entity.reuse_unchanged:
        wanted.append(("source_digest", "bytea"))
    have = conn.execute(
        "select attname, format_type(atttypid, atttypmod) from pg_attribute "
        "where attrelid = to_regclass(%s) and attnum > 0 and not attisdropped order by attnum",
        (f"staging.{entity.staging_table}",),
    ).fetchall()
    if [tuple(r) for r in have] != wanted:
        # Staging holds only batches in flight, so a table of an older shape is rebuilt.
        conn.execute(sql.SQL("drop table if exists {}").format(table))
        columns = sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(type_)) for name, type_ in wanted
        )
        conn.execute(sql.SQL("create unlogged table {} ({})").format(table, columns))
        conn.execute(
            sql.SQL("create index on {} (load_id)").format(table),
        )
    if entity.publish is not None:
        # Their publishing statements look rows up by key within the batch (the register
        # closes a version "unless the snapshot shows the person"): without this index each
        # lookup read the whole batch, 175 s for 3,000 changes in a 294,000-row snapshot.
        conn.execute(
            sql.SQL("create index if not exists {} on {} (load_id, {})").format(
                sql.Identifier(f"{entity.staging_table}__load_key"),
                table,
                sql.SQL(", ").join(map(sql.Identifier, entity.key)),
            )
        )
    return table


def validate(
    entity: Entity, warehouse_url: str, load_id: str, secret: bytes | None = None
) -> BatchSummary:
    """Parse and validate a landed batch; stage what passes, quarantine what does not.

    The batch is read, judged and staged ``CHUNK_RECORDS`` records at a time, in one
    transaction: its staged and quarantined rows appear together or not at all.
    ``secret`` is the person-key secret, required by entities that read ID numbers.
    """
    from civicflow.validation import SuiteRun

    if entity.uses_person_key and not secret:
        raise BatchError(entity, load_id, "this entity needs the person-key secret")
    with open_warehouse(warehouse_url) as conn:
        try:
            with conn.transaction():
                loaded = reference_rows(conn, entity)
                indexed = entity.index_references(loaded) if entity.index_references else None
                context = Context(indexed, secret)
                suite = SuiteRun(entity, load_id)
                writer = _BatchWriter(conn, entity, load_id)
                memo = (
                    _Memo.open(conn, entity, suite.suite_doc, loaded, secret)
                    if entity.reuse_unchanged
                    else None
                )
                missing: set[str] | None = None
                for chunk in _chunks(_payloads(conn, entity, load_id), CHUNK_RECORDS):
                    digests, known = (
                        memo.sort(chunk, writer.source_rows) if memo else (None, frozenset())
                    )
                    verdicts = judge(
                        entity,
                        chunk,
                        context,
                        first_index=writer.source_rows,
                        suite=suite,
                        skip=known,
                    )
                    verdicts.digests = digests
                    # Missing from every record of the batch: from every chunk.
                    chunk_missing = set(verdicts.missing_columns)
                    missing = chunk_missing if missing is None else missing & chunk_missing
                    writer.write(verdicts)
                    del chunk, verdicts
                if missing:
                    names = [f.source_name for f in entity.required_fields]
                    unknown = sorted(writer.extra_columns)
                    raise SchemaDriftError(
                        entity,
                        load_id,
                        f"required field(s) {', '.join(n for n in names if n in missing)} "
                        "missing from every record"
                        + (
                            f" (which carry unknown field(s) {', '.join(unknown)})"
                            if unknown
                            else ""
                        )
                        + ": the interface has changed; nothing was loaded",
                    )
                if memo is not None:
                    writer.reuse(memo, suite)
                summary, error = writer.finish(suite.finish(), entity.max_rejection_rate)
        except BatchError as exc:
            _fail(conn, load_id, "failed", exc.reason)
            raise
        except Exception as exc:
            _fail(conn, load_id, "failed", f"{type(exc).__name__}: {exc}")
            raise BatchError(entity, load_id, f"{type(exc).__name__}: {exc}") from exc

    if summary.quarantined_rows:
        log.warning(
            "%s: %d rows quarantined (load %s): %s",
            entity.qualified_name,
            summary.quarantined_rows,
            load_id,
            _top_reasons(writer.reasons),
        )
    if summary.status == "rejected":
        raise BatchRejected(entity, load_id, error or "rejected")
    return summary


def stage(
    conn: psycopg.Connection,
    entity: Entity,
    load_id: str,
    verdicts: _Verdicts,
    max_rejection_rate: float | None,
) -> tuple[BatchSummary, str | None]:
    """Write a judged batch: staged rows, quarantined rows, GX results and the audit's counts.

    One transaction, replacing what an earlier try of the same load wrote. The batch is
    ``rejected`` when its share of quarantined rows passes ``max_rejection_rate`` (None: never,
    as for a replay, whose rows were all quarantined once). Returns the summary and, for a
    rejected batch, the error recorded with it.
    """
    with conn.transaction():
        writer = _BatchWriter(conn, entity, load_id)
        writer.write(verdicts)
        return writer.finish(verdicts.outcomes, max_rejection_rate)


class _Memo:
    """The rows staged by the last published batch of a ``reuse_unchanged`` entity.

    A daily snapshot of a register differs from the day before in a few hundred of its
    300,000 records, yet each was parsed, checked by GX and transformed again: 14 of the
    58 seconds of a district's daily run. The batch last published keeps its staged rows
    (``publish_batch``), each with the digest of the record it came from. A record of a
    new batch with one of those digests is the same record (all but the snapshot's date)
    and gets the same row, copied in SQL with the new date, as long as nothing else that
    judged it has changed: the fingerprint covers the suite, the reference data (a
    steward's new alias can turn a quarantined row into an accepted one), the person-key
    secret and the source of the modules that parse and transform it. Rows of the memo
    passed every expectation; the suite's checked columns must all be expected not null,
    so that they count as checked and passed in the batch's GX totals. Only accepted rows
    are kept: a quarantined record is judged again, and so is any record of a new spelling.
    """

    def __init__(self, entity: Entity, fingerprint: str | None, load_id: str | None,
                 day: Any, digests: set[bytes], key: bytes) -> None:  # fmt: skip
        self.entity, self.fingerprint, self.load_id, self.day = entity, fingerprint, load_id, day
        self.digests, self.key = digests, key
        self.reused: list[tuple[int, bytes, Any]] = []  # (source index, digest, watermark)
        # The watermark's name in the source records: left out of their digests.
        self.watermark_source = next(
            f.source_name for f in entity.fields if f.name == entity.watermark_column
        )

    @classmethod
    def open(
        cls,
        conn: psycopg.Connection,
        entity: Entity,
        suite_doc: Mapping[str, Any],
        reference_rows: Mapping[str, list[dict[str, Any]]],
        secret: bytes | None,
    ) -> _Memo:
        fingerprint = verdict_fingerprint(entity, suite_doc, reference_rows, secret)
        # Records hold ID numbers and names: their digests are keyed, like person_key.
        key = hmac.new(secret or b"", b"civicflow record digests", "sha256").digest()
        if fingerprint is None:
            return cls(entity, None, None, None, set(), key)
        # FOR SHARE: until this transaction ends, no other batch of the entity publishes and
        # drops the memo's rows (its feed-state update waits).
        row = conn.execute(
            "select s.load_id from meta.feed_state s join meta.load_audit a using (load_id) "
            "where s.feed = %s and s.entity = %s and a.verdict_fingerprint = %s for share of s",
            (entity.feed, entity.name, fingerprint),
        ).fetchone()
        if row is None:
            return cls(entity, fingerprint, None, None, set(), key)
        table = sql.Identifier("staging", entity.staging_table)
        column = sql.Identifier(entity.watermark_column)
        day = conn.execute(
            sql.SQL("select max({}) from {} where load_id = %s").format(column, table), (row[0],)
        ).fetchone()[0]
        digests = {
            digest
            for (digest,) in conn.execute(
                sql.SQL(
                    "select source_digest from {} where load_id = %s and {} = %s "
                    "and source_digest is not null"
                ).format(table, column),
                (row[0], day),
            )
        }
        return cls(entity, fingerprint, str(row[0]), day, digests, key)

    def sort(self, records: list[Any], first_index: int) -> tuple[list[bytes], frozenset[int]]:
        """Each record's digest, and the source indexes of those the memo has a row for."""
        source = self.watermark_source
        digests = [record_digest(record, source, self.key) for record in records]
        known = []
        if self.digests:
            pairs = zip(records, digests, strict=True)
            for index, (record, digest) in enumerate(pairs, start=first_index):
                if digest in self.digests:
                    known.append(index)
                    self.reused.append((index, digest, record.get(source)))
        return digests, frozenset(known)


def record_digest(record: Any, without: str, key: bytes = b"") -> bytes:
    """A source record's digest, keyed: every field and value but ``without``, in order."""
    if not isinstance(record, Mapping):
        return hashlib.blake2b(repr(record).encode(), digest_size=16, key=key).digest()
    keys, values = list(record), list(record.values())
    if without in record:
        at = keys.index(without)
        del keys[at], values[at]
    try:  # text values (a CSV's) joined: twice as fast as repr
        text = "\x1f".join(keys) + "\x1d" + "\x1f".join(values)
    except TypeError:
        text = None
    if text is None or (text.count("\x1f"), text.count("\x1d")) != (len(keys) * 2 - 2, 1):
        text = repr(list(zip(keys, values, strict=True)))  # other values, or separators inside them
    return hashlib.blake2b(text.encode(), digest_size=16, key=key).digest()


def verdict_fingerprint(
    entity: Entity,
    suite_doc: Mapping[str, Any],
    reference_rows: Mapping[str, list[dict[str, Any]]],
    secret: bytes | None,
) -> str | None:
    """What a record's verdict depends on besides the record; None when rows cannot be reused.

    Reuse needs every expectation of the suite to be on a column expected not null: a reused
    row then counts as a row that passed them all.
    """
    expectations = suite_doc.get("expectations", [])
    not_null = {
        e["kwargs"].get("column")
        for e in expectations
        if e["type"] == "expect_column_values_to_not_be_null"
    }
    if any(e["kwargs"].get("column") not in not_null for e in expectations) or None in not_null:
        return None
    digest = hashlib.sha256()
    digest.update(json.dumps(suite_doc, sort_keys=True, ensure_ascii=False).encode())
    for name in sorted(reference_rows):
        rows = sorted(json.dumps(r, sort_keys=True, default=str) for r in reference_rows[name])
        digest.update(json.dumps([name, rows], ensure_ascii=False).encode())
    digest.update(hmac.new(secret or b"", b"civicflow verdicts", "sha256").digest())
    modules = {"civicflow.parse", "civicflow.spec", "civicflow.identity", __name__}
    modules.add(entity.transform.__module__)
    for name in sorted(modules):
        digest.update(Path(sys.modules[name].__file__).read_bytes())
    return digest.hexdigest()


class _BatchWriter:
    """Writes a batch's verdicts, chunk by chunk, then its counts: inside one transaction.

    Starting, it removes what an earlier try of the same load wrote.
    """

    def __init__(self, conn: psycopg.Connection, entity: Entity, load_id: str):
        self.conn, self.entity, self.load_id = conn, entity, load_id
        self.table = _ensure_staging_table(conn, entity)
        conn.execute(sql.SQL("delete from {} where load_id = %s").format(self.table), (load_id,))
        conn.execute("delete from quarantine.rejected_row where load_id = %s", (load_id,))
        conn.execute("delete from meta.dq_result where load_id = %s", (load_id,))
        self.source_rows = self.staged = self.quarantined = self.duplicates = self.chunks = 0
        self.reused = 0
        self.fingerprint: str | None = None
        self.reasons: Counter[str] = Counter()
        self.extra_columns: set[str] = set()

    def write(self, verdicts: _Verdicts) -> None:
        entity, load_id = self.entity, self.load_id
        _copy_staged(self.conn, entity, self.table, load_id, verdicts.accepted, verdicts.digests,
                     verdicts.first_index)  # fmt: skip
        with self.conn.cursor() as cur:
            cur.executemany(
                "insert into quarantine.rejected_row (load_id, feed, entity, source_index, "
                "record, reasons, failed_expectations, subject_key) "
                "values (%s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    (
                        load_id,
                        entity.feed,
                        entity.name,
                        index,
                        Jsonb(_quarantined(entity, verdicts.record(index))),
                        reasons,
                        verdicts.failed_expectations.get(index, []),
                        verdicts.subjects.get(index),
                    )
                    for index, reasons in sorted(verdicts.rejected.items())
                ],
            )
        self.source_rows += len(verdicts.records)
        self.staged += len(verdicts.accepted)
        self.quarantined += len(verdicts.rejected)
        self.duplicates += verdicts.duplicates
        self.reasons.update(reason for reasons in verdicts.rejected.values() for reason in reasons)
        self.extra_columns.update(verdicts.extra_columns)
        self.chunks += 1

    def reuse(self, memo: _Memo, suite: Any) -> None:
        """Stage the memo's rows for the records it knew, with their own watermark value."""
        self.fingerprint = memo.fingerprint
        if not memo.reused:
            return
        entity, ident = self.entity, sql.Identifier
        with self.conn.cursor() as cur:
            cur.execute(
                "create temporary table reused_record (source_index int4, source_digest bytea, "
                "watermark text) on commit drop"
            )
            with cur.copy("copy reused_record from stdin") as copy:
                copy.set_types(["int4", "bytea", "text"])
                for index, digest, watermark in memo.reused:
                    copy.write_row((index, digest, watermark))
        wm_type = next(c.type for c in entity.columns if c.name == entity.watermark_column)
        names = [c.name for c in entity.columns]
        values = [
            sql.SQL("r.watermark::{}").format(sql.SQL(SQL_TYPES[wm_type]))
            if name == entity.watermark_column
            else sql.SQL("m.{}").format(ident(name))
            for name in names
        ]
        inserted = self.conn.execute(
            sql.SQL(
                "insert into {table} (load_id, source_index, source_digest, {names}) "
                "select %(load_id)s, r.source_index, r.source_digest, {values} "
                "from reused_record r join {table} m on m.load_id = %(memo)s "
                "and m.source_digest = r.source_digest and m.{wm} = %(day)s"
            ).format(
                table=self.table,
                names=sql.SQL(", ").join(map(ident, names)),
                values=sql.SQL(", ").join(values),
                wm=ident(entity.watermark_column),
            ),
            {"load_id": self.load_id, "memo": memo.load_id, "day": memo.day},
        ).rowcount
        if inserted != len(memo.reused):
            raise RuntimeError(
                f"{inserted} of the {len(memo.reused)} rows to reuse from load {memo.load_id} "
                "were found: its staged rows changed during the validation"
            )
        self.conn.execute("drop table reused_record")
        self.staged += inserted
        self.reused = inserted
        suite.passed(inserted)

    def _settle_duplicates(self) -> int:
        """Rows of one key staged by different chunks: all but the one that wins are dropped."""
        entity, ident = self.entity, sql.Identifier
        order = sql.SQL("source_index desc")
        if entity.latest_by:
            order = sql.SQL("{} desc nulls last, source_index desc").format(ident(entity.latest_by))
        # The losers are deleted by their row address: the batch is not analysed yet, and a
        # plan joining them back by source_index read the whole batch once per loser.
        statement = sql.SQL(
            "delete from {table} where ctid = any(array(select ctid from (select ctid, "
            "row_number() over (partition by {key} order by {order}) as place from {table} "
            "where load_id = %(load_id)s) ranked where place > 1))"
        ).format(table=self.table, key=sql.SQL(", ").join(map(ident, entity.key)), order=order)
        return self.conn.execute(statement, {"load_id": self.load_id}).rowcount

    def finish(
        self, outcomes: list[Any], max_rejection_rate: float | None
    ) -> tuple[BatchSummary, str | None]:
        """The batch's GX outcomes and counts in the audit; returns its summary (see ``stage``)."""
        conn, entity, load_id = self.conn, self.entity, self.load_id
        if self.chunks > 1 or self.reused:  # rows of one key may come from different writes
            settled = self._settle_duplicates()
            self.staged -= settled
            self.duplicates += settled
        # Plan the merge on real row counts: never analysed, a staging table looks like one
        # row, and the register's anti-join then scanned the person history once a row.
        conn.execute(sql.SQL("analyze {}").format(self.table))
        with conn.cursor() as cur:
            cur.executemany(
                "insert into meta.dq_result (load_id, suite, expectation, success, "
                "unexpected_count, unexpected_percent) values (%s, %s, %s, %s, %s, %s)",
                [
                    (
                        load_id,
                        entity.suite_name,
                        o.label,
                        o.success,
                        o.unexpected_count,
                        o.unexpected_percent,
                    )
                    for o in outcomes
                ],
            )
        quarantined = self.quarantined
        considered = self.source_rows - self.duplicates
        rate = quarantined / considered if considered else 0.0
        rejected = max_rejection_rate is not None and rate > max_rejection_rate
        status = "rejected" if rejected else "validated"
        summary = BatchSummary(
            load_id=load_id,
            feed=entity.feed,
            entity=entity.name,
            status=status,
            source_rows=self.source_rows,
            accepted_rows=self.staged,
            quarantined_rows=quarantined,
            duplicate_rows=self.duplicates,
        )
        error = None
        if rejected:
            # Nothing of a rejected batch is published: its staged rows go, its quarantined
            # rows stay for the stewards.
            conn.execute(
                sql.SQL("delete from {} where load_id = %s").format(self.table), (load_id,)
            )
            error = (
                f"{quarantined} of {considered} rows ({rate:.1%}) failed validation, more "
                f"than the {max_rejection_rate:.1%} allowed; nothing was published. "
                f"Most common reasons: {_top_reasons(self.reasons)}"
            )
        conn.execute(
            "update meta.load_audit set status = %s, source_rows = %s, accepted_rows = %s, "
            "quarantined_rows = %s, duplicate_rows = %s, extra_columns = %s, error = %s, "
            "reused_rows = %s, verdict_fingerprint = %s, "
            "finished_at = case when %s = 'rejected' then now() end where load_id = %s",
            (
                status,
                summary.source_rows,
                summary.accepted_rows,
                summary.quarantined_rows,
                summary.duplicate_rows,
                sorted(self.extra_columns),
                error,
                self.reused if self.entity.reuse_unchanged else None,
                self.fingerprint,
                status,
                load_id,
            ),
        )
        return summary, error


def _top_reasons(reasons: Counter[str], n: int = 3) -> str:
    """The commonest kinds of reason, without the values they quote (for logs and the audit)."""
    kinds: Counter[str] = Counter()
    for reason, count in reasons.items():
        kinds[without_values(reason)] += count
    return "; ".join(f"{reason} ×{count}" for reason, count in kinds.most_common(n))


def _quarantined(entity: Entity, record: Any) -> Any:
    """The record as kept in quarantine: original values, without raw-only fields."""
    if isinstance(record, Mapping):
        dropped = {f.source_name for f in entity.fields if f.raw_only}
        record = {k: v for k, v in record.items() if k not in dropped}
    return json.loads(json.dumps(record, ensure_ascii=False, default=str))


def _copy_staged(
    conn: psycopg.Connection,
    entity: Entity,
    table: sql.Composed,
    load_id: str,
    rows: Mapping[int, Mapping[str, Any]],
    digests: list[bytes] | None = None,
    first_index: int = 0,
) -> None:
    """COPY staged rows; with ``digests`` (of the chunk whose first record is ``first_index``),
    each row's record digest too."""
    names = ["load_id", "source_index", *(c.name for c in entity.columns)]
    types = ["uuid", "int4", *(_copy_type(c.type) for c in entity.columns)]
    if digests is not None:
        names.append("source_digest")
        types.append("bytea")
    statement = sql.SQL("copy {} ({}) from stdin").format(
        table, sql.SQL(", ").join(map(sql.Identifier, names))
    )
    batch = uuid.UUID(load_id)
    with conn.cursor() as cur, cur.copy(statement) as copy:
        copy.set_types(types)
        for index, row in rows.items():
            values = [batch, index, *(row[c.name] for c in entity.columns)]
            if digests is not None:
                values.append(digests[index - first_index])
            copy.write_row(values)


def _copy_type(type_: str) -> str:
    return {
        "integer": "int4",
        "bigint": "int8",
        "double": "float8",
        "boolean": "bool",
        "text[]": "text[]",
    }.get(type_, SQL_TYPES[type_])


# --- merge -------------------------------------------------------------------------------------


def _merge_statement(entity: Entity) -> sql.Composed:
    columns = [c.name for c in entity.columns]
    values = [c for c in columns if c not in entity.key]
    ident = sql.Identifier
    schema, table = entity.target.split(".")
    return sql.SQL(sql_file("templates/merge")).format(
        target=ident(schema, table),
        staging=ident("staging", entity.staging_table),
        columns=sql.SQL(", ").join(map(ident, columns)),
        key=sql.SQL(", ").join(map(ident, entity.key)),
        updates=sql.SQL(", ").join(sql.SQL("{0} = excluded.{0}").format(ident(c)) for c in values),
        changed_target=sql.SQL(", ").join(ident(table, c) for c in values),
        changed_excluded=sql.SQL(", ").join(ident("excluded", c) for c in values),
        newer=sql.SQL("and {} >= {}").format(
            ident("excluded", entity.latest_by), ident(table, entity.latest_by)
        )
        if entity.latest_by
        else sql.SQL(""),
    )


def merge(entity: Entity, warehouse_url: str, load_id: str) -> BatchSummary:
    """Publish a validated batch into core, with its audit row and feed state, atomically."""
    with open_warehouse(warehouse_url) as conn:
        try:
            summary = publish_batch(conn, entity, load_id)
        except BatchError as exc:  # a batch refused at publishing stays unpublished, marked so
            conn.rollback()
            with conn.transaction():
                conn.execute(
                    "update meta.load_audit set status = 'failed', error = %s, "
                    "finished_at = now() where load_id = %s and status = 'validated'",
                    (exc.reason[:2000], load_id),
                )
            raise
    log.info("%s: published %s", entity.qualified_name, summary.as_dict())
    return summary


def publish_batch(conn: psycopg.Connection, entity: Entity, load_id: str) -> BatchSummary:
    """Publish a validated batch (see ``merge``); inside the caller's transaction, if it has one."""
    with conn.transaction():
        audit = conn.execute(
            "select status, source_rows, accepted_rows, quarantined_rows, duplicate_rows, "
            "inserted_rows, updated_rows, unchanged_rows, watermark, replay_of is not null "
            "from meta.load_audit where load_id = %s for update",
            (load_id,),
        ).fetchone()
        if audit is None:
            raise BatchError(entity, load_id, "no such load in meta.load_audit")
        status, source, accepted, quarantined, duplicates = audit[:5]
        replay = audit[9]
        if status in ("succeeded", "replayed"):  # a retried task whose first try committed
            return BatchSummary(load_id, entity.feed, entity.name, status, *audit[1:9])
        if status != "validated":
            raise BatchError(entity, load_id, f"cannot publish a batch whose status is {status}")

        staging = sql.Identifier("staging", entity.staging_table)
        staged = conn.execute(
            sql.SQL("select count(*) from {} where load_id = %s").format(staging), (load_id,)
        ).fetchone()[0]
        in_quarantine = conn.execute(
            "select count(*) from quarantine.rejected_row where load_id = %s", (load_id,)
        ).fetchone()[0]
        if (staged, in_quarantine) != (accepted, quarantined) or source != (
            accepted + quarantined + duplicates
        ):
            raise BatchError(
                entity,
                load_id,
                f"rows do not add up: source {source}, staged {staged} (audit {accepted}), "
                f"quarantined {in_quarantine} (audit {quarantined}), duplicates {duplicates}",
            )

        if entity.publish is not None:
            inserted, updated, unchanged = entity.publish(conn, entity, load_id)
        else:
            inserted, updated = conn.execute(
                _merge_statement(entity), {"load_id": load_id}
            ).fetchone()
            unchanged = accepted - inserted - updated

        # A replay republishes rows of batches whose watermark was committed long ago: it
        # moves no watermark and leaves the feed state, the cursor of the next fetch, alone.
        watermark = None
        if entity.watermark_column and not replay:
            newest = conn.execute(
                sql.SQL("select max({})::text from {} where load_id = %s").format(
                    sql.Identifier(entity.watermark_column), staging
                ),
                (load_id,),
            ).fetchone()[0]
            previous = conn.execute(
                "select watermark, load_id from meta.feed_state where feed = %s and entity = %s",
                (entity.feed, entity.name),
            ).fetchone()
            candidates = [w for w in (newest, previous[0] if previous else None) if w]
            watermark = max(candidates) if candidates else None
        if not replay:
            snapshot = conn.execute(
                "select encode(sha256(string_agg(sha256, ',' order by payload_id)::bytea), "
                "'hex') from raw.payload where load_id = %s",
                (load_id,),
            ).fetchone()[0]
            conn.execute(
                "insert into meta.feed_state (feed, entity, watermark, snapshot_sha256, load_id) "
                "values (%s, %s, %s, %s, %s) on conflict (feed, entity) do update set "
                "watermark = excluded.watermark, snapshot_sha256 = excluded.snapshot_sha256, "
                "load_id = excluded.load_id, committed_at = now()",
                (entity.feed, entity.name, watermark, snapshot, load_id),
            )
        published = "replayed" if replay else "succeeded"
        conn.execute(
            "update meta.load_audit set status = %s, finished_at = now(), "
            "inserted_rows = %s, updated_rows = %s, unchanged_rows = %s, watermark = %s "
            "where load_id = %s",
            (published, inserted, updated, unchanged, watermark, load_id),
        )
        # The invariant, checked by the database inside the publishing transaction.
        holds = conn.execute(
            "select source_rows = accepted_rows + quarantined_rows + duplicate_rows "
            "from meta.load_audit where load_id = %s",
            (load_id,),
        ).fetchone()[0]
        if not holds:
            raise BatchError(entity, load_id, "audit invariant does not hold; rolled back")
        # Staged rows are removed once published, except those of the newest batch of an
        # entity that reuses them (_Memo): the rows of the batch it replaces go instead.
        if entity.reuse_unchanged and not replay:
            if previous and previous[1] and str(previous[1]) != load_id:
                conn.execute(
                    sql.SQL("delete from {} where load_id = %s").format(staging), (previous[1],)
                )
        else:
            conn.execute(sql.SQL("delete from {} where load_id = %s").format(staging), (load_id,))
    return BatchSummary(
        load_id,
        entity.feed,
        entity.name,
        published,
        source,
        accepted,
        quarantined,
        duplicates,
        inserted,
        updated,
        unchanged,
        watermark,
    )


def run_entity(
    entity: Entity,
    feed: FeedSettings,
    warehouse_url: str,
    start_date: dt.date,
    end_date: dt.date,
    run_id: str | None = None,
    client: FeedClient | None = None,
    secret: bytes | None = None,
) -> BatchSummary:
    """All three steps in one process: for scripts, benchmarks and tests without Airflow."""
    load_id = extract(entity, feed, warehouse_url, start_date, end_date, run_id, client)
    validate(entity, warehouse_url, load_id, secret)
    return merge(entity, warehouse_url, load_id)

"""A steward's review and replay of quarantined rows, without fetching anything again.

``review`` counts a feed's open quarantined rows by reason. Once a steward has fixed what
made them fail (an alias in ``quarantine.community_alias``, say), ``replay`` runs those rows
through the same ``judge`` → ``stage`` → ``publish_batch`` as a fetched batch, as a batch of
its own in ``meta.load_audit`` (status ``replayed``, ``replay_of`` the batches the rows came
from), all in one transaction: rows that now pass are published, rows that fail for new
reasons are quarantined again in the replay batch, and each original row records where it
went (``replayed_in``, ``replay_outcome``). Rows that still fail for the same reasons are left
where they are, so replaying again changes nothing. A replay moves no watermark.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import importlib
import logging
import re
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import psycopg
from psycopg import sql

from civicflow.feeds import FEEDS
from civicflow.feeds import entity as lookup
from civicflow.pipeline import (
    BatchError,
    judge,
    open_warehouse,
    publish_batch,
    references,
    stage,
)
from civicflow.spec import SQL_TYPES, Context, Entity
from civicflow.warehouse import sql_file

log = logging.getLogger(__name__)

EXAMPLES = 3


class ReplayError(RuntimeError):
    """A replay that cannot run; nothing was changed."""


class ReasonCount(NamedTuple):
    """Open quarantined rows of one entity that share a kind of reason."""

    reason: str  # the kind: the reason up to its first quoted value
    count: int  # rows with at least one reason of this kind
    examples: tuple[str, ...]  # the most common full reasons of this kind
    entity: str


@dataclass(frozen=True)
class ReplaySummary:
    """What a replay did (or, for a dry run, would do): the replay batch's numbers and more.

    ``candidates`` open rows were considered; ``unchanged`` of them still fail for the
    reasons they were quarantined with and stay where they are; the others form the replay
    batch, whose ``source_rows = accepted_rows + quarantined_rows + duplicate_rows``.
    """

    feed: str
    entity: str
    status: str  # replayed, dry_run, or nothing_to_replay
    load_id: str | None = None  # the replay batch; None for a dry run
    candidates: int = 0
    unchanged: int = 0
    source_rows: int = 0
    accepted_rows: int = 0
    quarantined_rows: int = 0
    duplicate_rows: int = 0
    superseded_rows: int = 0  # of the duplicates: a newer version of the record is in core
    inserted_rows: int | None = None
    updated_rows: int | None = None
    unchanged_rows: int | None = None
    replay_of: tuple[str, ...] = ()
    new_reasons: dict[str, int] = field(default_factory=dict)  # of the rows quarantined again

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class _Candidate:
    load_id: str
    source_index: int
    record: Any
    reasons: list[str]
    failed_expectations: list[str]
    origin_load_id: str  # the fetched batch the record arrived in
    origin_started_at: dt.datetime


def _entity(feed: str, entity: str) -> Entity:
    try:
        return lookup(feed, entity)
    except KeyError:
        raise ReplayError(
            f"no entity {entity!r} in feed {feed!r}; it has "
            f"{', '.join(e.name for e in FEEDS.get(feed, ())) or 'no entities'}"
        ) from None


def reason_kind(reason: str) -> str:
    """A reason without the value it names: ``unknown community '旧南海居委会' in …`` →
    ``unknown community``."""
    return re.split(r"['\"]", reason, maxsplit=1)[0].rstrip(" (:") or reason


def _open_rows(
    conn: psycopg.Connection,
    feed: str,
    entity: str | None,
    reasons: Sequence[str] | None,
    loads: Sequence[str] | None,
    lock: bool = False,
) -> list[dict[str, Any]]:
    """Rows open for replay (``sql/queries/open_quarantined_rows.sql``); locked if asked."""
    query = sql.SQL(sql_file("queries/open_quarantined_rows"))
    if lock:
        query += sql.SQL(" for update of q")
    cleaned = [r.strip() for r in reasons or () if r and r.strip()]
    params = {
        "feed": feed,
        "entity": entity,
        "loads": list(loads) if loads is not None else None,
        "reasons": cleaned or None,
    }
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(query, params).fetchall()


def review(
    conn: psycopg.Connection,
    feed: str,
    entity: str | None = None,
    reasons: Sequence[str] | None = None,
    loads: Sequence[str] | None = None,
) -> list[ReasonCount]:
    """The feed's open quarantined rows (of published batches) by entity and kind of reason.

    ``reasons`` and ``loads`` select rows as :func:`replay` does. Most rows first; a row with
    reasons of two kinds counts under both.
    """
    if feed not in FEEDS:
        raise ReplayError(f"no feed {feed!r}; feeds are {', '.join(FEEDS)}")
    counts: Counter[tuple[str, str]] = Counter()
    examples: dict[tuple[str, str], Counter[str]] = {}
    for row in _open_rows(conn, feed, entity, reasons, loads):
        name = row["entity"]
        for kind in {reason_kind(r) for r in row["reasons"]}:
            counts[name, kind] += 1
        for reason in row["reasons"]:
            examples.setdefault((name, reason_kind(reason)), Counter())[reason] += 1
    return [
        ReasonCount(
            kind, count, tuple(r for r, _ in examples[name, kind].most_common(EXAMPLES)), name
        )
        for (name, kind), count in sorted(counts.items(), key=lambda kv: (kv[0][0], -kv[1]))
    ]


def open_batches(
    conn: psycopg.Connection, feed: str, entity: str, reasons: Sequence[str] | None = None
) -> list[str]:
    """The published batches holding open quarantined rows of the entity (and reasons)."""
    return sorted({str(r["load_id"]) for r in _open_rows(conn, feed, entity, reasons, None)})


def _candidates(
    conn: psycopg.Connection,
    entity: Entity,
    reasons: Sequence[str] | None,
    loads: Sequence[str] | None,
) -> list[_Candidate]:
    """Open rows to replay, locked, oldest record first (so the newest wins among duplicates)."""
    return [
        _Candidate(
            str(r["load_id"]),
            r["source_index"],
            r["record"],
            list(r["reasons"]),
            list(r["failed_expectations"]),
            str(r["origin_load_id"]),
            r["origin_started_at"],
        )
        for r in _open_rows(conn, entity.feed, entity.name, reasons, loads, lock=True)
    ]


def _lock(conn: psycopg.Connection, entity: Entity) -> None:
    """One replay of an entity at a time (the DAG allows one run; scripts might not)."""
    digest = hashlib.sha256(f"civicflow replay {entity.qualified_name}".encode()).digest()
    key = int.from_bytes(digest[:8], "big", signed=True)
    conn.execute("select pg_advisory_xact_lock(%s)", (key,))


def _superseded(
    conn: psycopg.Connection,
    entity: Entity,
    accepted: Mapping[int, Mapping[str, Any]],
    batch: Sequence[_Candidate],
) -> set[int]:
    """Accepted rows that a newer version of the same record already in core overtakes.

    An entity with its own publishing step says so itself (``replay_superseded`` in its feed
    module); a keyed upsert with ``latest_by`` keeps the newest on its own; a keyed upsert
    without one must not let an old record overwrite what a later batch wrote.
    """
    if not accepted:
        return set()
    if entity.publish is not None:
        module = importlib.import_module(f"civicflow.feeds.{entity.feed}")
        check = getattr(module, "replay_superseded", None)
        if check is None:
            raise ReplayError(f"{entity.qualified_name} has no replay_superseded: cannot replay")
        return check(conn, accepted)
    if entity.latest_by is not None:
        return set()
    types = {c.name: SQL_TYPES[c.type] for c in entity.columns}
    schema, table = entity.target.split(".")
    keys = sql.SQL(", ").join(sql.Identifier("t", k) for k in entity.key)
    query = sql.SQL(
        "select {keys}, a.started_at from {target} as t "
        "join meta.load_audit as a on a.load_id = t.load_id "
        "where ({keys}) in (select * from unnest({arrays}))"
    ).format(
        keys=keys,
        target=sql.Identifier(schema, table),
        arrays=sql.SQL(", ").join(
            sql.SQL("%s::{}[]").format(sql.SQL(types[k])) for k in entity.key
        ),
    )
    columns = [[row[k] for row in accepted.values()] for k in entity.key]
    written = {tuple(r[:-1]): r[-1] for r in conn.execute(query, columns).fetchall()}
    superseded = set()
    for index, row in accepted.items():
        written_by = written.get(tuple(row[k] for k in entity.key))
        if written_by is not None and written_by > batch[index].origin_started_at:
            superseded.add(index)
    return superseded


def replay(
    warehouse_url: str,
    feed: str,
    entity: str,
    reasons: Sequence[str] | None = None,
    dry_run: bool = False,
    secret: bytes | None = None,
    run_id: str | None = None,
    loads: Sequence[str] | None = None,
) -> ReplaySummary:
    """Replay the entity's open quarantined rows through validation and merge, as one batch.

    ``reasons`` narrows the rows to those with a reason beginning with one of them; ``loads``
    to those quarantined in these batches (what a steward reviewed). ``secret`` is the
    person-key secret, for entities that read ID numbers. A dry run does everything, reports
    the numbers, and rolls back. Raises :class:`ReplayError` (or the pipeline's
    ``BatchError``) with nothing changed when the replay cannot be published.
    """
    target = _entity(feed, entity)
    if target.uses_person_key and not secret:
        raise ReplayError(f"{target.qualified_name}: replaying needs the person-key secret")
    with open_warehouse(warehouse_url) as conn, conn.transaction(force_rollback=dry_run):
        _lock(conn, target)
        summary = _replay(conn, target, reasons, loads, secret, run_id, dry_run)
    log.info("%s: %s", target.qualified_name, summary.as_dict())
    return summary


def _replay(
    conn: psycopg.Connection,
    entity: Entity,
    reasons: Sequence[str] | None,
    loads: Sequence[str] | None,
    secret: bytes | None,
    run_id: str | None,
    dry_run: bool,
) -> ReplaySummary:
    candidates = _candidates(conn, entity, reasons, loads)
    nothing = ReplaySummary(entity.feed, entity.name, "nothing_to_replay")
    if not candidates:
        return nothing
    context = Context(references(conn, entity), secret)
    first = judge(entity, [c.record for c in candidates], context)
    # Rows failing exactly as before are not part of the batch: a replay that changes
    # nothing writes nothing, however often it is run.
    batch = [
        c
        for i, c in enumerate(candidates)
        if first.rejected.get(i) != c.reasons
        or sorted(first.failed_expectations.get(i, [])) != sorted(c.failed_expectations)
    ]
    unchanged = len(candidates) - len(batch)
    if not batch:
        return dataclasses.replace(nothing, candidates=len(candidates), unchanged=unchanged)

    # The batch itself is judged as any batch is, so that its GX results are its own.
    verdicts = judge(entity, [c.record for c in batch], context)
    superseded = _superseded(conn, entity, verdicts.accepted, batch)
    verdicts = dataclasses.replace(
        verdicts,
        accepted={i: row for i, row in verdicts.accepted.items() if i not in superseded},
        duplicates=verdicts.duplicates + len(superseded),
    )
    load_id = str(uuid.uuid4())
    replay_of = sorted({c.load_id for c in batch})
    conn.execute(
        "insert into meta.load_audit (load_id, feed, entity, run_id, status, replay_of) "
        "values (%s, %s, %s, %s, 'validated', %s::uuid[])",
        (
            load_id,
            entity.feed,
            entity.name,
            run_id or f"replay__{dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}",
            replay_of,
        ),
    )
    stage(conn, entity, load_id, verdicts, max_rejection_rate=None)
    again = sorted(verdicts.rejected)
    conn.execute(
        "update quarantine.rejected_row q set origin_load_id = m.origin "
        "from unnest(%s::int[], %s::uuid[]) as m (source_index, origin) "
        "where q.load_id = %s and q.source_index = m.source_index",
        (again, [batch[i].origin_load_id for i in again], load_id),
    )
    published = publish_batch(conn, entity, load_id)

    outcomes = [
        "accepted"
        if i in verdicts.accepted
        else "quarantined"
        if i in verdicts.rejected
        else "duplicate"
        for i in range(len(batch))
    ]
    moved = conn.execute(
        "update quarantine.rejected_row q set replayed_in = %s, replay_outcome = m.outcome "
        "from unnest(%s::uuid[], %s::int[], %s::text[]) as m (load_id, source_index, outcome) "
        "where q.load_id = m.load_id and q.source_index = m.source_index "
        "and q.replayed_in is null",
        (
            load_id,
            [c.load_id for c in batch],
            [c.source_index for c in batch],
            outcomes,
        ),
    ).rowcount
    if moved != len(batch):
        raise BatchError(entity, load_id, f"{moved} of {len(batch)} replayed rows were still open")
    return ReplaySummary(
        feed=entity.feed,
        entity=entity.name,
        status="dry_run" if dry_run else published.status,
        load_id=None if dry_run else load_id,
        candidates=len(candidates),
        unchanged=unchanged,
        source_rows=published.source_rows,
        accepted_rows=published.accepted_rows,
        quarantined_rows=published.quarantined_rows,
        duplicate_rows=published.duplicate_rows,
        superseded_rows=len(superseded),
        inserted_rows=published.inserted_rows,
        updated_rows=published.updated_rows,
        unchanged_rows=published.unchanged_rows,
        replay_of=tuple(replay_of),
        new_reasons=dict(
            Counter(reason_kind(r) for i in again for r in verdicts.rejected[i]).most_common()
        ),
    )


def describe(
    feed: str,
    entity: str,
    reasons: Sequence[ReasonCount],
    preview: ReplaySummary,
    target: str | None = None,
) -> str:
    """Markdown for the steward who approves a replay: what is open, and what a replay does."""
    open_rows = preview.candidates
    lines = [f"**{feed}.{entity}**: {open_rows} open quarantined row(s) selected.", ""]
    if reasons:
        lines += ["| reason | rows | for example |", "|---|---|---|"]
        for r in reasons:
            example = (r.examples[0] if r.examples else "").replace("|", "\\|")
            lines.append(f"| {r.reason} | {r.count} | {example} |")
        lines.append("")
    if preview.candidates == 0:
        lines.append("Nothing to replay.")
        return "\n".join(lines)
    if preview.source_rows == 0:
        lines.append(
            f"A replay now would change nothing: all {preview.unchanged} still fail for the "
            "reasons they were quarantined with."
        )
        return "\n".join(lines)
    into = f" into `{target}`" if target else ""
    lines.append(
        f"A replay now (dry run) accepts **{preview.accepted_rows}** row(s){into} "
        f"({preview.inserted_rows or 0} new, {preview.updated_rows or 0} changed), "
        f"quarantines {preview.quarantined_rows} again with new reasons, finds "
        f"{preview.duplicate_rows} duplicate(s) ({preview.superseded_rows} overtaken by newer "
        f"data), and leaves {preview.unchanged} that still fail for the same reasons."
    )
    if preview.new_reasons:
        lines.append(
            "New reasons: "
            + "; ".join(f"{kind} ×{count}" for kind, count in preview.new_reasons.items())
        )
    return "\n".join(lines)


def review_and_preview(
    warehouse_url: str,
    feed: str,
    entity: str,
    reasons: Sequence[str] | None = None,
    secret: bytes | None = None,
) -> dict[str, Any]:
    """What the replay DAG's review shows: open rows by reason, and a dry run's numbers.

    ``loads`` pins the batches reviewed, so an approved replay takes no row quarantined after.
    """
    target = _entity(feed, entity)
    with open_warehouse(warehouse_url) as conn:
        loads = open_batches(conn, feed, entity, reasons)
        by_reason = review(conn, feed, entity, reasons, loads) if loads else []
    preview = (
        replay(warehouse_url, feed, entity, reasons, dry_run=True, secret=secret, loads=loads)
        if loads
        else ReplaySummary(feed, entity, "nothing_to_replay")
    )
    return {
        "feed": feed,
        "entity": entity,
        "target": target.target,
        "reasons": [r._asdict() for r in by_reason],
        "loads": loads,
        "preview": preview.as_dict(),
        "would_publish": preview.source_rows > 0,
        "markdown": describe(feed, entity, by_reason, preview, target.target),
    }

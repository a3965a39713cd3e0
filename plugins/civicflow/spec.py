"""Feed descriptions: each entity of each feed is described once, here in data.

Parsing, the expectation suite in ``expectations/``, the staging table and the
merge into ``core`` all follow from an :class:`Entity`. This module imports
nothing heavy so that DAG files can read descriptions at parse time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Source field types and the PostgreSQL type a staged column of that type gets.
SQL_TYPES = {
    "text": "text",
    "integer": "integer",
    "bigint": "bigint",
    "numeric": "numeric",
    "double": "double precision",
    "boolean": "boolean",
    "date": "date",
    "timestamptz": "timestamp with time zone",
    "text[]": "text[]",
    "jsonb": "jsonb",
}

IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Field:
    """One field of a source record, as the department's interface defines it.

    The expectations a field implies (not null, range, allowed values, pattern)
    are derived from its attributes; see :func:`suite`.
    """

    name: str
    type: str
    source: str | None = None  # the field's name in the payload when it differs
    required: bool = True  # must be present in the record
    nullable: bool = False
    personal: bool = False  # personal data: never copied past staging
    raw_only: bool = False  # never copied past raw, not even into quarantine (clinical details)
    min: float | None = None
    max: float | None = None
    values: tuple[str, ...] | None = None
    pattern: str | None = None

    @property
    def source_name(self) -> str:
        return self.source or self.name


@dataclass(frozen=True)
class Column:
    """A column of the staged, conformed rows (and of the core table they merge into)."""

    name: str
    type: str


@dataclass(frozen=True)
class Request:
    """One HTTP request of an extraction."""

    path: str
    params: Mapping[str, str] = field(default_factory=dict)


class Reject(Exception):
    """Raised by a transform: the record is quarantined with this reason.

    ``subject`` is the person_key of the person the record is about, when it is known
    (a valid ID number in an otherwise faulty row); it is kept with the quarantined row.
    """

    def __init__(self, reason: str, subject: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.subject = subject


# The most person keys a batch's Context remembers (about 15-20 MB); when full it starts again.
PERSON_KEYS_KEPT = 100_000


@dataclass(frozen=True)
class Context:
    """What every ``transform`` call receives besides the record."""

    references: Any = None  # the result of the entity's ``index_references``
    secret: bytes | None = None  # the person-key secret, for entities that read ID numbers
    # Person keys already computed for this batch: the same person appears in many records.
    _person_keys: dict[str, str] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def person_key(self, id_no: str) -> str:
        known = self._person_keys
        key = known.get(id_no)
        if key is None:
            from civicflow.identity import person_key

            if self.secret is None:
                raise RuntimeError("this batch was validated without the person-key secret")
            if len(known) >= PERSON_KEYS_KEPT:
                known.clear()
            key = known[id_no] = person_key(id_no, self.secret)
        return key


@dataclass(frozen=True)
class Window:
    """What an extraction should cover: the run's data interval and the feed's state."""

    start_date: Any  # datetime.date, first day of the run's data interval (Asia/Shanghai)
    end_date: Any  # datetime.date, last complete day of the run's data interval
    watermark: str | None = None  # the feed_state watermark last committed
    options: Mapping[str, Any] = field(default_factory=dict)  # from the connection's extra


@dataclass(frozen=True)
class Entity:
    """One entity of one feed: where it comes from, what it holds, where it goes."""

    feed: str
    name: str
    description: str
    records: Callable[[Any], Iterable[Mapping[str, Any]]]  # decoded payload -> source records
    fields: tuple[Field, ...]
    columns: tuple[Column, ...]  # staged rows, in the target table's names
    key: tuple[str, ...]
    target: str  # schema.table in the warehouse
    transform: Callable[[dict[str, Any], Context], dict[str, Any]]
    # What to fetch: either a list of GET requests answered with JSON, or a function
    # that pages through the feed itself: ``fetch(client, window)`` yields Fetched payloads.
    requests: Callable[[Window], Sequence[Request]] | None = None
    fetch: Callable[[Any, Window], Iterable[Any]] | None = None
    # Reference data from the warehouse: sql/queries files whose rows are handed to
    # ``index_references``, whose result every ``transform`` call receives.
    references: tuple[str, ...] = ()
    index_references: Callable[[Mapping[str, list[dict[str, Any]]]], Any] | None = None
    # A payload that is not JSON (a CSV export, a workbook): ``decode(body, meta)`` gives the
    # document ``records`` reads; ``meta`` is what the feed's index said about the file.
    decode: Callable[[bytes, Mapping[str, Any]], Any] | None = None
    # A publishing step other than the keyed upsert (type-2 history, replacing a ledger):
    # ``publish(conn, entity, load_id)`` runs inside the merge transaction and returns the
    # (inserted, updated, unchanged) row counts it reports in the audit.
    publish: Callable[[Any, Entity, str], tuple[int, int, int]] | None = None
    uses_person_key: bool = False  # the transform calls ``context.person_key``
    watermark_column: str | None = None  # column whose maximum becomes the watermark
    # Of two rows with the same key, the one with the larger value here wins, in a
    # batch and against core (a source's own last-change time); else the later row.
    latest_by: str | None = None
    max_rejection_rate: float = 0.05
    expected_cadence_hours: int = 24
    extra_expectations: tuple[dict[str, Any], ...] = ()
    # A full snapshot, each much like the one before: a record identical to one the last
    # published batch staged (all but its ``watermark_column``) keeps that row without being
    # parsed, checked or transformed again, as long as the suite, the reference data, the
    # person-key secret and the code that judged it are unchanged (see pipeline._Memo).
    reuse_unchanged: bool = False
    # Another entity of the feed that reads the very same listing (the same path, from the
    # same ``updated_since`` rule), run before this one: when it landed its pages in the same
    # run from a point no later than this one's, this one lands a copy instead of fetching
    # the listing again (see pipeline._copy_listing).
    listing_of: str | None = None

    def __post_init__(self) -> None:
        for name in [self.feed, self.name, *(c.name for c in self.columns)]:
            if not IDENTIFIER.match(name):
                raise ValueError(f"{self.qualified_name}: {name!r} is not a plain identifier")
        schema, _, table = self.target.partition(".")
        if not (IDENTIFIER.match(schema) and IDENTIFIER.match(table)):
            raise ValueError(f"{self.qualified_name}: target {self.target!r} is not schema.table")
        column_names = {c.name for c in self.columns}
        missing = [k for k in self.key if k not in column_names]
        if missing:
            raise ValueError(f"{self.qualified_name}: key columns {missing} are not columns")
        for f in self.fields:
            if f.type not in SQL_TYPES:
                raise ValueError(f"{self.qualified_name}: field {f.name} has unknown type {f.type}")
        for c in self.columns:
            if c.type not in SQL_TYPES:
                raise ValueError(
                    f"{self.qualified_name}: column {c.name} has unknown type {c.type}"
                )
        if (self.requests is None) == (self.fetch is None):
            raise ValueError(f"{self.qualified_name}: give exactly one of requests and fetch")
        if self.latest_by and self.latest_by not in column_names:
            raise ValueError(f"{self.qualified_name}: latest_by {self.latest_by} is not a column")
        if self.reuse_unchanged and not (
            self.watermark_column
            and self.watermark_column in column_names
            and any(f.name == self.watermark_column for f in self.fields)
        ):
            raise ValueError(
                f"{self.qualified_name}: reuse_unchanged needs a watermark_column that is both "
                "a field and a column (the snapshot's date, which differs in every snapshot)"
            )
        personal = {f.name for f in self.fields if f.personal or f.raw_only}
        leaked = personal & column_names
        if leaked:
            raise ValueError(f"{self.qualified_name}: personal fields {sorted(leaked)} are columns")

    @property
    def qualified_name(self) -> str:
        return f"{self.feed}.{self.name}"

    @property
    def staging_table(self) -> str:
        return f"{self.feed}__{self.name}"

    @property
    def suite_name(self) -> str:
        return self.qualified_name

    @property
    def required_fields(self) -> list[Field]:
        return [f for f in self.fields if f.required]


def field_expectations(f: Field) -> list[dict[str, Any]]:
    """The expectations a field's attributes imply, in GX Core 1.x suite form."""
    out: list[dict[str, Any]] = []

    def add(kind: str, **kwargs: Any) -> None:
        out.append({"type": kind, "kwargs": {"column": f.name, **kwargs}, "meta": {}})

    if not f.nullable:
        add("expect_column_values_to_not_be_null")
    if f.min is not None or f.max is not None:
        add("expect_column_values_to_be_between", min_value=f.min, max_value=f.max)
    if f.values is not None:
        add("expect_column_values_to_be_in_set", value_set=list(f.values))
    if f.pattern is not None:
        add("expect_column_values_to_match_regex", regex=f.pattern)
    return out


def suite(entity: Entity) -> dict[str, Any]:
    """The expectation suite of an entity, as stored in ``expectations/<feed>.<entity>.json``."""
    expectations = [e for f in entity.fields for e in field_expectations(f)]
    expectations += [dict(e) for e in entity.extra_expectations]
    return {
        "name": entity.suite_name,
        "expectations": expectations,
        "meta": {
            "generated_from": f"civicflow.feeds.{entity.feed}:{entity.name}",
            "regenerate_with": "make expectations",
        },
    }


def suite_path(entity: Entity, root: Path) -> Path:
    return root / "expectations" / f"{entity.suite_name}.json"


def expectation_label(expectation: Mapping[str, Any]) -> str:
    """A short readable name: ``expect_column_values_to_be_between(visitors)``."""
    kwargs = expectation.get("kwargs", {})
    target = kwargs.get("column") or ",".join(kwargs.get("column_list", []))
    return f"{expectation['type']}({target})"

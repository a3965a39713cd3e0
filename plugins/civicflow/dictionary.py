"""The data dictionary for analysts, generated from the warehouse's own comments.

``python -m civicflow.cli dictionary`` writes ``docs/data-dictionary.md``; a test
regenerates it and fails when the file or any comment is missing, so the
dictionary cannot drift from the schema.
"""

from __future__ import annotations

import psycopg

SCHEMAS = ("core", "marts", "meta")
KINDS = {"r": "table", "p": "table", "v": "view", "m": "materialized view"}

_OBJECTS = """
select n.nspname, c.relname, c.relkind, obj_description(c.oid, 'pg_class')
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where n.nspname = any(%s) and c.relkind in ('r', 'p', 'v', 'm')
order by array_position(%s, n.nspname::text), c.relname
"""
_COLUMNS = """
select a.attname, format_type(a.atttypid, a.atttypmod), not a.attnotnull,
       col_description(c.oid, a.attnum)
from pg_class c join pg_namespace n on n.oid = c.relnamespace
join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
where n.nspname = %s and c.relname = %s
order by a.attnum
"""


def missing_comments(conn: psycopg.Connection) -> list[str]:
    """Tables, views and columns analysts can read that carry no comment."""
    missing = []
    for schema, name, _, comment in conn.execute(_OBJECTS, (list(SCHEMAS), list(SCHEMAS))):
        if not comment:
            missing.append(f"{schema}.{name}")
        for column, _, _, column_comment in conn.execute(_COLUMNS, (schema, name)).fetchall():
            if not column_comment:
                missing.append(f"{schema}.{name}.{column}")
    return missing


def render(conn: psycopg.Connection) -> str:
    """The dictionary as Markdown: every object of core, marts and meta, with its columns."""
    out = [
        "# Data dictionary",
        "",
        "Generated from the warehouse's comments by `make dictionary`; do not edit by hand.",
        "Analysts (`analyst` role) read `core`, `marts` and `meta`. Nothing here holds an ID",
        "number, a name, a phone number or a person's address; people appear only as",
        "`person_key`.",
    ]
    objects = conn.execute(_OBJECTS, (list(SCHEMAS), list(SCHEMAS))).fetchall()
    for schema in SCHEMAS:
        out += ["", f"## {schema}"]
        for obj_schema, name, kind, comment in objects:
            if obj_schema != schema:
                continue
            out += [
                "",
                f"### {schema}.{name} ({KINDS[kind]})",
                "",
                " ".join((comment or "").split()),
            ]
            out += ["", "| column | type | null | meaning |", "|---|---|---|---|"]
            for column, type_, nullable, column_comment in conn.execute(
                _COLUMNS, (schema, name)
            ).fetchall():
                meaning = " ".join((column_comment or "").split()).replace("|", "\\|")
                null = "yes" if nullable else "no"
                out.append(f"| `{column}` | {type_} | {null} | {meaning} |")
    return "\n".join(out) + "\n"

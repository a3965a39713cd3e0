"""The warehouse's roles, proved by logging in as a user granted each one.

``analyst`` reads core, marts and meta only; ``steward`` also reads quarantine;
neither reads raw or staging, and neither can change what the pipeline wrote.
"""

from __future__ import annotations

import re

import psycopg
import pytest
from psycopg import sql

from tests.conftest import login_as

ANALYST_SCHEMAS = {"core", "marts", "meta"}
PIPELINE_ONLY = ("raw", "staging")
# Column names that would say a person's ID number, name, phone or address is there.
PERSONAL = re.compile(r"(^|_)(id_?(no|number|card)|sfzh|name|phone|mobile|tel|address|addr)($|_)")
# Named like personal data, but not about a person: a service position's public
# street address and the file name of a migration.
NOT_PERSONAL = {("core", "dim_position", "address"), ("meta", "schema_migration", "name")}
PLACE_NAMES = {"street_name", "community_name", "position_name"}


def tables(conn: psycopg.Connection, schemas: tuple[str, ...]) -> list[tuple[str, str]]:
    return conn.execute(
        "select table_schema, table_name from information_schema.tables "
        "where table_schema = any(%s) "
        "union select schemaname, matviewname from pg_matviews where schemaname = any(%s) "
        "order by 1, 2",
        (list(schemas), list(schemas)),
    ).fetchall()


def selectable(url: str, schema: str, table: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        try:
            conn.execute(sql.SQL("select * from {} limit 1").format(sql.Identifier(schema, table)))
        except psycopg.errors.InsufficientPrivilege:
            return False
    return True


def readable_tables(url: str) -> set[tuple[str, str]]:
    """Every table, view and materialized view the login can select from, outside the catalogs."""
    with psycopg.connect(url) as conn:
        return set(
            conn.execute(
                "select n.nspname, c.relname from pg_class c "
                "join pg_namespace n on n.oid = c.relnamespace "
                "where c.relkind in ('r', 'v', 'm', 'p', 'f') "
                "and n.nspname not in ('pg_catalog', 'information_schema') "
                "and n.nspname not like 'pg_toast%%' "
                "and has_schema_privilege(n.oid, 'usage') "
                "and has_table_privilege(c.oid, 'select')"
            ).fetchall()
        )


def usable_schemas(url: str, schemas: tuple[str, ...]) -> set[str]:
    with psycopg.connect(url) as conn:
        return {
            name
            for (name,) in conn.execute(
                "select nspname from pg_namespace "
                "where nspname = any(%s) and has_schema_privilege(oid, 'usage')",
                (list(schemas),),
            )
        }


def test_an_analyst_reads_core_marts_and_meta_and_nothing_else(district):
    with psycopg.connect(district) as conn:
        everything = tables(conn, ("core", "marts", "meta"))
        hidden = tables(conn, ("raw", "staging", "quarantine"))
    assert len(everything) > 15 and len(hidden) >= 2  # staging holds a batch only while it loads
    with login_as(district, "analyst") as analyst:
        readable = readable_tables(analyst)
        assert {schema for schema, _ in readable} == ANALYST_SCHEMAS
        assert readable == set(everything)
        for schema, table in hidden:
            assert not selectable(analyst, schema, table), f"{schema}.{table}"
        assert usable_schemas(analyst, ("raw", "staging", "quarantine")) == set()
        with psycopg.connect(analyst, autocommit=True) as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("select * from raw.payload limit 1")
            assert conn.execute("select count(*) from marts.elderly_coverage").fetchone()[0] == 4


@pytest.mark.parametrize(
    "statement",
    [
        "delete from core.fact_service",
        "update core.dim_person set registry_status = '迁出'",
        "insert into meta.feed_state (feed, entity, watermark) values ('x', 'y', 'z')",
        "create table core.mine (x int)",
        "create table marts.mine (x int)",
        "refresh materialized view marts.elderly_coverage",
        "drop view marts.feed_health",
    ],
)
def test_an_analyst_cannot_change_the_warehouse(district, statement):
    with (
        login_as(district, "analyst") as analyst,
        psycopg.connect(analyst) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute(statement)


def test_a_steward_also_reads_quarantine_but_never_raw_and_cannot_delete(district):
    with login_as(district, "steward") as steward:
        readable = readable_tables(steward)
        assert {schema for schema, _ in readable} == ANALYST_SCHEMAS | {"quarantine"}
        assert ("quarantine", "rejected_row") in readable
        assert usable_schemas(steward, ("raw", "staging", "quarantine")) == {"quarantine"}
        with psycopg.connect(district) as conn:
            for schema, table in tables(conn, PIPELINE_ONLY):
                assert not selectable(steward, schema, table), f"{schema}.{table}"
        with psycopg.connect(steward) as conn:
            assert conn.execute("select count(*) from quarantine.rejected_row").fetchone() == (0,)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("delete from quarantine.rejected_row")


def test_no_column_an_analyst_reads_is_named_like_personal_data(district):
    with login_as(district, "analyst") as analyst, psycopg.connect(analyst) as conn:
        columns = conn.execute(
            "select c.table_schema, c.table_name, c.column_name "
            "from information_schema.columns c "
            "where c.table_schema in ('core', 'marts', 'meta') "
            "union select n.nspname, t.relname, a.attname from pg_attribute a "
            "join pg_class t on t.oid = a.attrelid join pg_namespace n on n.oid = t.relnamespace "
            "where t.relkind = 'm' and a.attnum > 0 and not a.attisdropped "
            "and n.nspname = 'marts'"
        ).fetchall()
        person = [
            name
            for (name,) in conn.execute(
                "select column_name from information_schema.columns "
                "where table_schema = 'core' and table_name = 'dim_person'"
            )
        ]
    assert len(columns) > 100 and "person_key" in person
    flagged = {
        column for column in columns if PERSONAL.search(column[2]) and column[2] not in PLACE_NAMES
    }
    assert flagged == NOT_PERSONAL
    assert not {c for c in person if PERSONAL.search(c)}

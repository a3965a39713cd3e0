"""The faster marts of V0010 give V0008's rows; feed_health (V0011) lists every feed.

V0010 recomputes elderly_coverage, unreached_vulnerable and fifteen_minute_circle another
way. Each mart is compared row for row (as text, so numeric scales count too) with the
SELECT that V0008 defined, read from that migration's file, on a district-year made by
bench/district_year.py at a small scale and on the hand-made district of ``small_district``.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from civicflow.marts import MARTS, refresh
from civicflow.pipeline import open_warehouse
from civicflow.warehouse import sql_dir

ROOT = Path(__file__).resolve().parents[2]
UNIQUE_KEYS = {
    "position_monthly": "(month, position_code)",
    "elderly_coverage": "(month, community_code)",
    "unreached_vulnerable": "(person_key)",
    "fifteen_minute_circle": "(community_code)",
    "volunteer_monthly": "(month, street_code)",
}


def v0008_selects() -> dict[str, str]:
    """Each materialized mart's SELECT as V0008 wrote it."""
    text = (sql_dir() / "migrations" / "V0008__marts.sql").read_text(encoding="utf-8")
    found = dict(
        re.findall(
            r"create materialized view marts\.(\w+) as\n(.*?);\ncreate unique index", text, re.S
        )
    )
    assert set(found) == set(MARTS)
    return found


def district_year():
    """bench/district_year.py, the benchmark's generator (bench/ is scripts, not a package)."""
    path = ROOT / "bench" / "district_year.py"
    spec = importlib.util.spec_from_file_location("district_year", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("district_year", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def generated(warehouse_url: str) -> str:
    """A warehouse holding a generated district-year at a small scale, marts refreshed."""
    with open_warehouse(warehouse_url) as conn:
        rows = district_year().generate(conn, scale=0.01, seed=7)
        assert rows["core.fact_service"] > 40_000 and rows["core.dim_person"] > 3_500
        # Statistics, as autovacuum gathers them after a load: without them V0008's
        # unreached_vulnerable reads every service once per person (minutes, not seconds).
        conn.execute("analyze")
        refresh(conn)
    return warehouse_url


def test_the_generator_writes_the_same_district_year_for_the_same_seed(warehouse_url):
    columns = (
        "select string_agg(quote_ident(attname), ', ' order by attnum) from pg_attribute "
        "where attrelid = %s::regclass and attnum > 0 and not attisdropped "
        "and attname <> 'updated_at'"  # the time of writing, not data
    )

    def digests(conn: psycopg.Connection, tables: list[str]) -> dict[str, str]:
        out = {}
        for table in tables:
            query = sql.SQL(
                "select count(*) || ':' || md5(string_agg(r::text, '|' order by r::text)) "
                "from (select {} from {}) r"
            ).format(
                sql.SQL(conn.execute(columns, (table,)).fetchone()[0]),
                sql.Identifier(*table.split(".")),
            )
            out[table] = conn.execute(query).fetchone()[0]
        return out

    generate = district_year().generate
    with open_warehouse(warehouse_url) as conn:
        tables = list(generate(conn, scale=0.002, seed=11))
        first = digests(conn, tables)
        truncate = sql.SQL("truncate {} cascade").format(
            sql.SQL(", ").join(sql.Identifier(*table.split(".")) for table in tables)
        )
        conn.execute(truncate)
        generate(conn, scale=0.002, seed=11)
        assert digests(conn, tables) == first
        conn.execute(truncate)
        generate(conn, scale=0.002, seed=12)
        assert digests(conn, tables)["core.fact_service"] != first["core.fact_service"]


def as_text(conn: psycopg.Connection, relation: sql.Composable) -> list[str]:
    query = sql.SQL("select r::text from {} r order by 1").format(relation)
    return [text for (text,) in conn.execute(query)]


@pytest.mark.parametrize("warehouse", ["generated", "district"])
def test_every_mart_holds_exactly_the_rows_v0008_defined(warehouse, request):
    url = request.getfixturevalue(warehouse)
    with psycopg.connect(url) as conn:
        for name, select in v0008_selects().items():
            expected = as_text(conn, sql.SQL("({})").format(sql.SQL(select)))
            actual = as_text(conn, sql.Identifier("marts", name))
            assert actual == expected, name
            assert actual, f"{name} is empty: the comparison proves nothing"


def test_the_marts_keep_v0008s_columns_unique_indexes_and_grants(warehouse_url):
    columns = (
        "select attname, format_type(atttypid, atttypmod) from pg_attribute "
        "where attrelid = %s::regclass and attnum > 0 and not attisdropped order by attnum"
    )
    with open_warehouse(warehouse_url) as conn, conn.transaction():
        for name, select in v0008_selects().items():
            conn.execute(
                sql.SQL("create temporary view {} as {}").format(
                    sql.Identifier(f"v0008_{name}"), sql.SQL(select)
                )
            )
            mart = conn.execute(columns, (f"marts.{name}",)).fetchall()
            assert mart == conn.execute(columns, (f"v0008_{name}",)).fetchall(), name
            unique = conn.execute(
                "select pg_get_indexdef(i.indexrelid) from pg_index i "
                "where i.indrelid = %s::regclass and i.indisunique",
                (f"marts.{name}",),
            ).fetchall()
            assert [d for (d,) in unique if d.endswith(f"USING btree {UNIQUE_KEYS[name]}")], name
        for name in (*MARTS, "feed_health"):
            for role in ("analyst", "steward"):
                assert conn.execute(
                    "select has_table_privilege(%s, %s, 'select')", (role, f"marts.{name}")
                ).fetchone()[0], (role, name)


def test_a_feed_whose_batches_all_failed_is_listed_as_failing(warehouse_url):
    audit = (
        "insert into meta.load_audit (load_id, feed, entity, status, started_at, finished_at, "
        "source_rows, accepted_rows, quarantined_rows) "
        "values (%s, %s, %s, %s, now() - %s::interval, now() - %s::interval, %s, %s, %s)"
    )
    with open_warehouse(warehouse_url) as conn:
        for feed, entity, status, ago, source, accepted, quarantined in (
            ("health", "service_records", "succeeded", "1 hour", 100, 95, 5),
            ("elderly_care", "ledgers", "failed", "3 hours", 0, 0, 0),
            ("elderly_care", "ledgers", "rejected", "2 hours", 40, 30, 10),
        ):
            conn.execute(
                audit, (uuid.uuid4(), feed, entity, status, ago, ago, source, accepted, quarantined)
            )
        health = {
            feed: rest
            for feed, *rest in conn.execute(
                "select feed, last_success_at, last_snapshot_or_watermark, rows_last_load, "
                "quarantined_last_load, quarantine_rate, hours_since_success, status "
                "from marts.feed_health"
            )
        }
    assert set(health) == {"health", "elderly_care"}
    assert health["elderly_care"] == [None, None, None, None, None, None, "failing"]
    assert health["health"][-1] == "ok"

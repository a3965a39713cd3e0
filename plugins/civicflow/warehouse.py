"""The PostgreSQL warehouse: connections, versioned migrations, and the project's SQL files."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import psycopg
from psycopg import sql

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"
MIGRATION_NAME = re.compile(r"^V(\d{4})__([a-z0-9_]+)\.sql$")
MIGRATION_LOCK = 0x63697669  # any constant shared by every civicflow process


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def text(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def sql_dir() -> Path:
    if not SQL_DIR.is_dir():
        raise MigrationError(f"SQL folder not found at {SQL_DIR}")
    return SQL_DIR


@cache
def sql_file(name: str) -> str:
    """The text of ``sql/<name>.sql``."""
    return (sql_dir() / f"{name}.sql").read_text(encoding="utf-8")


def migrations() -> list[Migration]:
    found = []
    for path in sorted((sql_dir() / "migrations").glob("*.sql")):
        m = MIGRATION_NAME.match(path.name)
        if not m:
            raise MigrationError(f"{path.name}: migrations are named V0001__what_it_does.sql")
        found.append(Migration(int(m[1]), m[2], path))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migrations share a version: {versions}")
    return found


def connect(url: str, **kwargs) -> psycopg.Connection:
    return psycopg.connect(url, application_name="civicflow", **kwargs)


def migrate(conn: psycopg.Connection) -> list[str]:
    """Apply the migrations not yet applied, in order, in one transaction.

    Safe to call from several processes at once (an advisory lock serialises
    them) and as often as wanted. An applied migration whose file has changed is
    an error: migrations are append-only, so upgrades never rewrite or drop data.
    """
    applied_now: list[str] = []
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute("create schema if not exists meta")
        conn.execute(
            """
            create table if not exists meta.schema_migration (
                version integer primary key,
                name text not null,
                checksum text not null,
                applied_at timestamptz not null default now()
            )
            """
        )
        applied = dict(conn.execute("select version, checksum from meta.schema_migration"))
        for m in migrations():
            if m.version in applied:
                if applied[m.version] != m.checksum:
                    raise MigrationError(
                        f"migration {m.path.name} was changed after it was applied; add a new "
                        "migration instead of editing an applied one"
                    )
                continue
            conn.execute(m.text)
            conn.execute(
                "insert into meta.schema_migration (version, name, checksum) values (%s, %s, %s)",
                (m.version, m.name, m.checksum),
            )
            applied_now.append(m.path.name)
    return applied_now


def table_counts(conn: psycopg.Connection, schema: str) -> dict[str, int]:
    """Row counts of every table, view and materialized view in a schema (exact, for reports)."""
    tables = [
        r[0]
        for r in conn.execute(
            "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = %s and c.relkind in ('r', 'p', 'v', 'm') order by c.relname",
            (schema,),
        )
    ]
    counts = {}
    for table in tables:
        query = sql.SQL("select count(*) from {}").format(sql.Identifier(schema, table))
        counts[f"{schema}.{table}"] = conn.execute(query).fetchone()[0]
    return counts

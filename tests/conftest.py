"""Shared fixtures: a real PostgreSQL server (embedded) and the feed simulator over real HTTP.

A test that needs a service gets it started here; when it cannot start, the
test errors with the reason. Nothing is skipped for a missing service.
"""

from __future__ import annotations

import json
import os
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from civicflow.config import FeedSettings
from civicflow.httpclient import FeedClient, RetryPolicy, client_for
from civicflow.localdb import LocalPostgres, free_port
from civicflow.simulator.server import RunningSimulator

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def gx_results(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Validation results the tests keep for the Data Docs go to a temporary folder."""
    with pytest.MonkeyPatch.context() as env:
        folder = tmp_path_factory.mktemp("gx")
        env.setenv("CIVICFLOW_GX_DIR", str(folder))
        yield folder


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPostgres]:
    pg = LocalPostgres(tmp_path_factory.mktemp("pg"), port=free_port(), durable=False)
    pg.start()
    try:
        yield pg
    finally:
        pg.stop()


@contextmanager
def fresh_database(postgres: LocalPostgres, template: str | None = None) -> Iterator[str]:
    """A new database on the test server, a copy of ``template`` or empty; dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres.url("postgres"), autocommit=True) as conn:
        create = sql.SQL("create database {}").format(sql.Identifier(name))
        if template:
            create += sql.SQL(" template {}").format(sql.Identifier(template))
        conn.execute(create)
    try:
        yield postgres.url(name)
    finally:
        with psycopg.connect(postgres.url("postgres"), autocommit=True) as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )


@pytest.fixture(scope="session")
def migrated_template(postgres: LocalPostgres) -> str:
    """A database with every migration applied, which each test's warehouse is copied from.

    Copying a database is several times cheaper than migrating one, and the
    migrations still run here, through the code every task uses.
    """
    from civicflow.pipeline import open_warehouse

    name = f"migrated_{uuid.uuid4().hex[:8]}"
    with open_warehouse(postgres.ensure_database(name)) as conn:
        assert conn.execute("select count(*) from meta.schema_migration").fetchone()[0] > 0
    return name


@pytest.fixture
def warehouse_url(postgres: LocalPostgres, migrated_template: str) -> Iterator[str]:
    """A fresh warehouse database for one test, every migration applied."""
    with fresh_database(postgres, migrated_template) as url:
        yield url


@pytest.fixture
def simulator() -> Iterator[RunningSimulator]:
    with RunningSimulator(port=0) as sim:
        yield sim


@pytest.fixture
def positions_feed(simulator: RunningSimulator) -> FeedSettings:
    return FeedSettings(feed="positions", base_url=f"{simulator.url}/positions")


def fast_client(settings: FeedSettings, **policy) -> FeedClient:
    """A client whose backoff is short, so retry tests take milliseconds, not minutes."""
    return client_for(
        settings, policy=RetryPolicy(backoff_base_s=0.01, backoff_max_s=0.05, **policy)
    )


def sim_call(simulator: RunningSimulator, path: str, method: str = "GET", document=None) -> dict:
    """A call to the simulator's steering API (``/_sim/...``), as JSON."""
    data = json.dumps(document).encode() if document is not None else None
    request = urllib.request.Request(f"{simulator.url}{path}", data=data, method=method)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


@contextmanager
def login_as(url: str, role: str) -> Iterator[str]:
    """A temporary login user granted ``role`` (analyst, steward), as a person or BI tool has.

    Yields that user's URL; the user is dropped afterwards. Tests connect with it
    rather than ``set role``, so they prove what a real login can and cannot do.
    """
    user = f"t_{role}_{uuid.uuid4().hex[:8]}"
    password = uuid.uuid4().hex
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("create role {} login password {} in role {}").format(
                sql.Identifier(user), sql.Literal(password), sql.Identifier(role)
            )
        )
    try:
        yield psycopg.conninfo.make_conninfo(url, user=user, password=password)
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(user)))


def airflow_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of an Airflow of the project's own in ``home`` (SQLite metadata).

    Nothing of the caller's Airflow or civicflow settings leaks in; ``extra`` adds to it.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CIVICFLOW"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "CIVICFLOW_ENV": "test",
            **extra,
        }
    )
    return env

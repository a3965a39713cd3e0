"""Real Airflow: ``airflow dags test`` of every ingest DAG and the marts, then the warehouse.

Airflow and Great Expectations take minutes to import on a small shared
machine, so the module migrates one metadata database and runs the DAGs, in
dependency order, through Airflow's own ``dags test`` command in one
interpreter (``civicflow.airflow.dagtest``); the tests then read what each run left.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from civicflow.cli import simulator_connections
from civicflow.config import DEMO_PERSON_KEY
from civicflow.identity import person_key, resident_id
from civicflow.marts import MARTS as MATERIALIZED
from civicflow.simulator.people import residents
from civicflow.simulator.server import (
    DEMO_API_KEY,
    DEMO_CLIENT,
    DEMO_LEDGER_TOKEN,
    DEMO_REGISTER_LOGIN,
    RunningSimulator,
)
from civicflow.simulator.world import visits_document

from ..conftest import airflow_env, fresh_database, login_as

ROOT = Path(__file__).resolve().parents[2]
DAY = dt.date(2026, 11, 20)
AS_OF = DAY + dt.timedelta(days=7)  # the simulator's today: the register has DAY .. AS_OF - 1
DAGS = (  # references first
    "positions_ingest",
    "civil_affairs_ingest",
    "health_ingest",
    "elderly_care_ingest",
    "volunteer_ingest",
    "warehouse_marts",  # what an Asset event would trigger after the feeds
    "feed_watch",  # every feed has just delivered: nothing to report
)
# Airflow starts slowly on a shared 2-core machine: allow far more than a normal test.
pytestmark = [pytest.mark.airflow, pytest.mark.timeout(5000)]


def airflow(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).with_name("airflow")), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=ROOT,
    )


def succeeded(result: subprocess.CompletedProcess) -> bool:
    if result.returncode != 0:
        print(result.stdout[-6000:], result.stderr[-6000:], sep="\n")
    return result.returncode == 0


@pytest.fixture(scope="module")
def simulator_module():
    with RunningSimulator(port=0, scale=0.0005, token_uses=3, as_of=AS_OF) as sim:
        yield sim


@pytest.fixture(scope="module")
def airflow_environment(tmp_path_factory, simulator_module) -> dict[str, str]:
    home = tmp_path_factory.mktemp("airflow")
    env = airflow_env(
        home,
        **simulator_connections(simulator_module.url),
        AIRFLOW_CONN_CIVICFLOW_PERSON_KEY=json.dumps(
            {"conn_type": "generic", "password": DEMO_PERSON_KEY}
        ),
        CIVICFLOW_REPORT_DIR=str(home / "reports"),
        CIVICFLOW_GX_DIR=str(home / "gx"),
    )
    assert succeeded(airflow(env, "db", "migrate"))
    return env


@pytest.fixture(scope="module")
def dag_runs(airflow_environment, postgres):
    """Every DAG run once by ``airflow dags test`` against one fresh warehouse."""
    with fresh_database(postgres) as warehouse_url:
        env = {**airflow_environment, "AIRFLOW_CONN_WAREHOUSE": warehouse_url}
        result = subprocess.run(
            [sys.executable, "-m", "civicflow.airflow.dagtest", DAY.isoformat(), *DAGS],
            env=env,
            capture_output=True,
            text=True,
            timeout=4800,
            cwd=ROOT,
        )
        exit_codes = {
            line["dag_id"]: line["exit_code"]
            for line in map(
                json.loads, (x for x in result.stdout.splitlines() if x.startswith("{"))
            )
        }
        if exit_codes != dict.fromkeys(DAGS, 0):
            print(result.stdout[-8000:], result.stderr[-8000:], sep="\n")
        yield warehouse_url, exit_codes, result.stdout + result.stderr


def audits_of(url: str, feed: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "select entity, status, run_id, source_rows = accepted_rows + quarantined_rows "
            "+ duplicate_rows, source_rows, accepted_rows from meta.load_audit where feed = %s "
            "order by started_at",
            (feed,),
        ).fetchall()


def test_airflow_dags_test_loads_the_positions_feed(dag_runs, simulator_module):
    warehouse_url, exit_codes, output = dag_runs
    assert exit_codes["positions_ingest"] == 0
    with psycopg.connect(warehouse_url) as conn:
        counts = {
            t: conn.execute(f"select count(*) from core.{t}").fetchone()[0]  # noqa: S608
            for t in ("dim_street", "dim_community", "dim_position", "fact_position_day")
        }
        watermark = conn.execute(
            "select watermark from meta.feed_state where entity = 'visits'"
        ).fetchone()[0]
    audits = audits_of(warehouse_url, "positions")
    district = simulator_module.state.district
    visits = sum(len(visits_document(district, DAY - dt.timedelta(days=d))) for d in range(3))
    assert counts == {
        "dim_street": 18,
        "dim_community": 222,
        "dim_position": 254,
        "fact_position_day": visits,
    }
    assert [(a[0], a[1], a[3]) for a in audits] == [
        ("streets", "succeeded", True),
        ("communities", "succeeded", True),
        ("positions", "succeeded", True),
        ("visits", "succeeded", True),
    ]
    assert watermark == DAY.isoformat()  # a manual run covers its logical date
    assert len({a[2] for a in audits}) == 1 and audits[0][2].startswith("manual__")
    assert DEMO_PERSON_KEY not in output


def test_airflow_dags_test_loads_the_health_feed(dag_runs, simulator_module):
    warehouse_url, exit_codes, output = dag_runs
    assert exit_codes["health_ingest"] == 0
    truth = simulator_module.state.health.truth()
    audits = audits_of(warehouse_url, "health")
    assert [(a[0], a[1], a[3], a[4], a[5]) for a in audits] == [
        ("service_records", "succeeded", True, truth["served_rows"], truth["loaded"])
    ]
    with psycopg.connect(warehouse_url) as conn:
        rows = conn.execute(
            "select count(*) from core.fact_service where source_feed = 'health'"
        ).fetchone()[0]
    assert rows == truth["loaded"]
    assert DEMO_CLIENT[1] not in output


def test_airflow_dags_test_loads_the_volunteer_platform(dag_runs, simulator_module):
    warehouse_url, exit_codes, output = dag_runs
    assert exit_codes["volunteer_ingest"] == 0
    truth = simulator_module.state.volunteer.truth()
    audits = audits_of(warehouse_url, "volunteer")
    assert [(a[0], a[1], a[3], a[4], a[5]) for a in audits] == [
        (entity, "succeeded", True, truth[key]["served_rows"], truth[key]["loaded"])
        for entity, key in (
            ("volunteers", "volunteers"),
            ("activities", "activities"),
            ("service_hours", "service-hours"),
            ("volunteer_help", "volunteer_help"),
        )
    ]
    assert DEMO_API_KEY not in output


def test_airflow_dags_test_loads_the_register_as_history(dag_runs, simulator_module):
    warehouse_url, exit_codes, output = dag_runs
    assert exit_codes["civil_affairs_ingest"] == 0
    truth = simulator_module.state.civil_affairs.truth(DAY)
    audits = audits_of(warehouse_url, "civil_affairs")
    assert [(a[0], a[1], a[3], a[4], a[5]) for a in audits] == [
        ("register", "succeeded", True, truth["rows"], truth["loaded"])
    ]
    with psycopg.connect(warehouse_url) as conn:
        current = conn.execute(
            "select count(*) from core.dim_person where is_current and valid_from = %s", (DAY,)
        ).fetchone()[0]
    assert current == truth["loaded"]
    assert DEMO_REGISTER_LOGIN[1] not in output


def test_airflow_dags_test_loads_the_elderly_care_ledgers(dag_runs, simulator_module):
    warehouse_url, exit_codes, output = dag_runs
    assert exit_codes["elderly_care_ingest"] == 0
    months = ["2026-08", "2026-09", "2026-10", "2026-11"]  # lookback_months 3 from DAY
    truth = simulator_module.state.elderly_care.truth(months)
    loaded = truth["meals"]["loaded"] + truth["day_care"]["loaded"]
    audits = audits_of(warehouse_url, "elderly_care")
    assert [(a[0], a[1], a[3], a[5]) for a in audits] == [("ledgers", "succeeded", True, loaded)]
    assert DEMO_LEDGER_TOKEN not in output


def test_person_keys_agree_across_feeds(dag_runs, simulator_module):
    """A person's key is the same in the register, in health records and in ledgers."""
    warehouse_url, exit_codes, _ = dag_runs
    assert exit_codes["civil_affairs_ingest"] == exit_codes["health_ingest"] == 0
    secret = DEMO_PERSON_KEY.encode()
    state = simulator_module.state
    registered = {person_key(i, secret) for i in state.civil_affairs.truth(DAY)["register"]}
    health = {
        person_key(resident_id(r["id_no"]), secret)
        for rid, r in state.health.records.items()
        if state.health.dirt.get(rid) not in ("invalid_check_digit", "unknown_community")
    }
    with psycopg.connect(warehouse_url) as conn:
        in_register = {k for (k,) in conn.execute("select person_key from core.dim_person")}
        in_health = {
            k
            for (k,) in conn.execute(
                "select person_key from core.fact_service where source_feed = 'health'"
            )
        }
        ledger_people = conn.execute(
            "select count(distinct person_key), count(distinct person_key) filter ("
            "where person_key in (select person_key from core.dim_person)) "
            "from core.fact_service where source_feed = 'elderly_care'"
        ).fetchone()
    assert (in_register, in_health) == (registered, health)
    assert in_register & in_health == registered & health and registered & health
    assert ledger_people[1] > 0.9 * ledger_people[0]  # diners are mostly registered people


def test_no_column_analysts_read_holds_an_id_number_a_name_or_a_phone(dag_runs, simulator_module):
    """Every text value in core, marts and meta, against the people the simulator served."""
    warehouse_url, _, _ = dag_runs
    people = residents(simulator_module.state.district, simulator_module.state.scale)
    names = {p.name for p in people}
    numbers = {p.id_no for p in people} | {p.id_no[:6] + p.id_no[8:17] for p in people}
    numbers |= {p.phone for p in people} | {f"020-8{p.phone[-7:]}" for p in people}
    with login_as(warehouse_url, "analyst") as analyst, psycopg.connect(analyst) as conn:
        # Every text column of every table, view and materialized view the login can read.
        columns = conn.execute(
            "select n.nspname, c.relname, a.attname from pg_attribute a "
            "join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace "
            "where c.relkind in ('r', 'v', 'm', 'p') and a.attnum > 0 and not a.attisdropped "
            "and n.nspname not in ('pg_catalog', 'information_schema') "
            "and has_schema_privilege(n.oid, 'usage') and has_table_privilege(c.oid, 'select') "
            "and a.atttypid in ('text'::regtype, 'varchar'::regtype, 'text[]'::regtype, "
            "'jsonb'::regtype)"
        ).fetchall()
        assert {schema for schema, _, _ in columns} == {"core", "marts", "meta"}
        assert ("marts", "unreached_vulnerable", "person_key") in columns
        seen = 0
        for schema, table, column in columns:
            query = sql.SQL("select distinct {}::text from {}").format(
                sql.Identifier(column), sql.Identifier(schema, table)
            )
            for (value,) in conn.execute(query):
                if value is None:
                    continue
                seen += 1
                upper = value.upper()
                assert not any(n in upper for n in numbers), (schema, table, column, value)
                assert value not in names, (schema, table, column)
    assert seen > 1000


MARTS = (*MATERIALIZED, "feed_health")


def test_the_marts_run_answers_from_every_feed(dag_runs):
    """What a new user checks after ``make demo``: rows everywhere, rates that are rates."""
    warehouse_url, exit_codes, _ = dag_runs
    assert exit_codes["warehouse_marts"] == 0
    with login_as(warehouse_url, "analyst") as analyst, psycopg.connect(analyst) as conn:
        counts = {
            name: conn.execute(
                sql.SQL("select count(*) from {}").format(sql.Identifier("marts", name))
            ).fetchone()[0]
            for name in MARTS
        }
        assert all(counts.values()), counts
        assert counts["fifteen_minute_circle"] == 222  # one row per community
        outside = conn.execute(
            "select count(*) from marts.elderly_coverage where coverage_rate not between 0 and 1 "
            "or elderly_served_any > elderly_registered"
        ).fetchone()[0]
        rated = conn.execute(
            "select count(*) from marts.elderly_coverage where coverage_rate > 0"
        ).fetchone()[0]
        feeds = {f for (f,) in conn.execute("select feed from marts.feed_health")}
    assert outside == 0 and rated > 0
    assert feeds == {"positions", "civil_affairs", "health", "elderly_care", "volunteer"}


def test_the_outreach_list_holds_only_current_registered_vulnerable_elderly(
    dag_runs, simulator_module
):
    """Checked against the simulator's register (its truth), not against core."""
    warehouse_url, _, _ = dag_runs
    secret = DEMO_PERSON_KEY.encode()
    register = simulator_module.state.civil_affairs.truth(DAY)["register"]
    eligible = {
        person_key(id_no, secret)
        for id_no, (_, categories, status, _, born) in register.items()
        if status == "在册"
        and born <= DAY.year - 60
        and {"独居老人", "高龄老人", "特困人员"} & set(categories)
    }
    with psycopg.connect(warehouse_url) as conn:
        listed = {k for (k,) in conn.execute("select person_key from marts.unreached_vulnerable")}
    assert listed and eligible
    assert listed <= eligible


def test_the_watch_finds_every_feed_fresh_after_the_runs(dag_runs):
    _, exit_codes, output = dag_runs
    assert exit_codes["feed_watch"] == 0
    assert "check_positions" in output and "check_elderly_care" in output


def test_task_logs_hold_no_key_password_token_or_id_number(
    dag_runs, airflow_environment, simulator_module
):
    """What every task wrote, on the console and in Airflow's log folder, read back."""
    _, _, output = dag_runs
    logs = Path(airflow_environment["AIRFLOW_HOME"], "logs")
    texts = [output] + [
        p.read_text(encoding="utf-8", errors="replace") for p in logs.rglob("*") if p.is_file()
    ]
    text = "\n".join(texts)
    # Not a vacuous pass: the tasks' own lines are here, naming their batches and URLs.
    assert "health.service_records: published" in text
    assert "health.service_records: landed" in text
    tokens = list(simulator_module.state.tokens)
    assert tokens  # the health feed was paged with bearer tokens
    secrets = {
        "person key": DEMO_PERSON_KEY,
        "health client secret": DEMO_CLIENT[1],
        "volunteer API key": DEMO_API_KEY,
        "register password": DEMO_REGISTER_LOGIN[1],
        "ledger token": DEMO_LEDGER_TOKEN,
        **{f"bearer token {i}": token for i, token in enumerate(tokens)},
    }
    assert [name for name, secret in secrets.items() if secret in text] == []
    people = residents(simulator_module.state.district, simulator_module.state.scale)
    assert [p.id_no for p in people if p.id_no in text] == []


def test_the_same_logical_date_run_again_changes_nothing(dag_runs, airflow_environment, postgres):
    """Idempotency through Airflow: ``positions_ingest`` run again for the same logical date.

    ``airflow dags test`` makes a second run of ``DAY``; positions re-fetches its whole window
    (three snapshots and three days of tallies) and publishes it again, into a copy of the
    warehouse the first runs left (the other tests keep theirs). Checksums of every core table
    (bookkeeping columns aside, see ``test_backfill``) and the watermarks stay as they were.
    The crash-safety tests (``tests/integration/test_crash_safety.py``) rerun every feed at
    the pipeline level; this is the one Airflow process this suite spends on it.
    """
    from ..integration.test_backfill import checksums, watermarks

    warehouse_url, exit_codes, _ = dag_runs
    assert exit_codes["positions_ingest"] == 0
    source = psycopg.conninfo.conninfo_to_dict(warehouse_url)["dbname"]
    with fresh_database(postgres, source) as copy:
        before = checksums(copy), watermarks(copy)
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "civicflow.airflow.dagtest",
                DAY.isoformat(),
                "positions_ingest",
            ],
            env={**airflow_environment, "AIRFLOW_CONN_WAREHOUSE": copy},
            capture_output=True,
            text=True,
            timeout=1800,
            cwd=ROOT,
        )
        assert '{"dag_id": "positions_ingest", "exit_code": 0}' in result.stdout, (
            result.stdout[-4000:] + result.stderr[-4000:]
        )
        after = checksums(copy), watermarks(copy)
        with psycopg.connect(copy) as conn:
            runs = conn.execute(
                "select run_id, entity, status, source_rows, inserted_rows, updated_rows "
                "from meta.load_audit where feed = 'positions' order by started_at"
            ).fetchall()
    first, second = runs[:4], runs[4:]
    assert [r[1] for r in second] == ["streets", "communities", "positions", "visits"]
    assert len({r[0] for r in first} | {r[0] for r in second}) == 2  # two runs of DAY
    assert all(r[2:3] == ("succeeded",) and r[3] > 0 and r[4:] == (0, 0) for r in second), second
    assert after == before

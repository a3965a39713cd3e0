"""Real Airflow: ``airflow dags test positions_ingest``, then the warehouse is checked.

Airflow runs are slow to start, so one metadata database serves the module.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from civicflow.config import DEMO_PERSON_KEY
from civicflow.simulator.server import RunningSimulator
from civicflow.simulator.world import visits_document

from ..conftest import fresh_database

ROOT = Path(__file__).resolve().parents[2]
DAY = dt.date(2026, 11, 20)
# Airflow starts slowly on a shared 2-core machine: allow far more than a normal test.
pytestmark = [pytest.mark.airflow, pytest.mark.timeout(2400)]


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
    with RunningSimulator(port=0) as sim:
        yield sim


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory, simulator_module) -> dict[str, str]:
    home = tmp_path_factory.mktemp("airflow")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CIVICFLOW"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW_CONN_POSITIONS_FEED": json.dumps(
                {"conn_type": "http", "host": f"{simulator_module.url}/positions"}
            ),
            "AIRFLOW_CONN_CIVICFLOW_PERSON_KEY": json.dumps(
                {"conn_type": "generic", "password": DEMO_PERSON_KEY}
            ),
            "CIVICFLOW_ENV": "test",
        }
    )
    assert succeeded(airflow(env, "db", "migrate"))
    return env


def test_airflow_dags_test_loads_the_positions_feed(airflow_env, postgres, simulator_module):
    with fresh_database(postgres) as warehouse_url:
        env = {**airflow_env, "AIRFLOW_CONN_WAREHOUSE": warehouse_url}
        result = airflow(env, "dags", "test", "positions_ingest", DAY.isoformat())
        assert succeeded(result)
        with psycopg.connect(warehouse_url) as conn:
            counts = {
                t: conn.execute(f"select count(*) from core.{t}").fetchone()[0]  # noqa: S608
                for t in ("dim_street", "dim_community", "dim_position", "fact_position_day")
            }
            watermark = conn.execute(
                "select watermark from meta.feed_state where entity = 'visits'"
            ).fetchone()[0]
            audits = conn.execute(
                "select entity, status, run_id, source_rows = accepted_rows + quarantined_rows "
                "+ duplicate_rows from meta.load_audit order by started_at"
            ).fetchall()
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
    assert DEMO_PERSON_KEY not in result.stdout + result.stderr

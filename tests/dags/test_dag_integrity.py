"""DAG integrity: every DAG file imports cleanly, cheaply, and carries what operators need."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted((ROOT / "dags").glob("*.py"))
HEAVY_MODULES = ("pandas", "great_expectations", "psycopg", "requests", "sqlalchemy.orm")


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


def test_there_are_dag_files():
    assert [p.stem for p in DAG_FILES] == [
        "civil_affairs_ingest",
        "elderly_care_ingest",
        "feed_watch",
        "health_ingest",
        "positions_ingest",
        "quarantine_replay",
        "volunteer_ingest",
        "warehouse_marts",
    ]


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {p.stem for p in DAG_FILES}  # dag_id = file name


def test_every_dag_has_owner_tags_retries_and_docs(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.doc_md and dag_id in dag.doc_md, dag_id
        assert "civicflow" in dag.tags, dag_id
        assert dag.catchup is False, dag_id
        assert dag.start_date.tzinfo is not None, dag_id
        for t in dag.tasks:
            assert t.owner not in ("", "airflow"), t.task_id
            assert t.retries >= 1, t.task_id
            assert t.on_failure_callback, f"{dag_id}.{t.task_id} fails without an alert"


def test_ingest_tasks_are_verbs_and_merges_publish_core_assets(dagbag):
    dag = dagbag.dags["positions_ingest"]
    assert {t.task_id.split(".")[-1] for t in dag.tasks} == {"extract", "validate", "merge"}
    outlets = {
        o.uri.rsplit("/", 2)[-2] + "." + o.uri.rsplit("/", 1)[-1]
        for t in dag.tasks
        for o in t.outlets
    }
    assert outlets == {
        "core.dim_street",
        "core.dim_community",
        "core.dim_position",
        "core.fact_position_day",
    }
    # References are merged before the entities that resolve against them.
    order = [t.task_id for t in dag.topological_sort()]
    assert order.index("communities.merge") < order.index("positions.validate")
    assert order.index("positions.merge") < order.index("visits.validate")


def test_marts_refresh_on_any_core_table_a_feed_publishes(dagbag):
    from civicflow.feeds import all_entities

    published = {
        o.uri for dag_id, dag in dagbag.dags.items() if dag_id.endswith("_ingest")
        for t in dag.tasks for o in t.outlets
    }  # fmt: skip
    marts = dagbag.dags["warehouse_marts"]
    watched = {a.uri for a in marts.timetable.asset_condition.objects}
    assert watched == published and len(watched) == len({e.target for e in all_entities()})


def test_an_extract_task_refuses_the_demo_key_in_production_without_retries(dagbag, monkeypatch):
    """The task's own callable, as Airflow would call it: AirflowFailException means no retries.

    It must stop before it reaches the warehouse or the feed, so neither is configured here.
    """
    from airflow.sdk.exceptions import AirflowFailException

    from civicflow.config import DEMO_PERSON_KEY

    monkeypatch.setenv("CIVICFLOW_PERSON_KEY", DEMO_PERSON_KEY)
    monkeypatch.setenv("CIVICFLOW_ENV", "production")
    for name in ("AIRFLOW_CONN_WAREHOUSE", "AIRFLOW_CONN_POSITIONS_FEED"):
        monkeypatch.delenv(name, raising=False)
    extract = dagbag.dags["positions_ingest"].get_task("streets.extract")
    with pytest.raises(AirflowFailException, match="published demo key"):
        extract.python_callable(run_id="manual__refusal", logical_date=None)
    monkeypatch.setenv("CIVICFLOW_ENV", "demo")
    with pytest.raises(Exception) as err:  # past the key check, it now needs a warehouse
        extract.python_callable(run_id="manual__refusal", logical_date=None)
    assert "published demo key" not in str(err.value)


def test_an_extract_task_refuses_to_start_without_a_person_key(dagbag, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    for name in (
        "CIVICFLOW_PERSON_KEY",
        "AIRFLOW_CONN_CIVICFLOW_PERSON_KEY",
        "AIRFLOW_CONN_WAREHOUSE",
    ):
        monkeypatch.delenv(name, raising=False)
    extract = dagbag.dags["health_ingest"].get_task("service_records.extract")
    with pytest.raises(AirflowFailException, match="no person-key secret"):
        extract.python_callable(run_id="manual__refusal", logical_date=None)


@pytest.fixture(scope="module")
def parse_costs() -> dict[str, dict]:
    """Each DAG file imported in turn in one fresh interpreter, after Airflow's own SDK.

    One interpreter for all files: importing the SDK alone takes over a minute on a
    loaded shared machine. A heavy module is charged to the first file that imports
    it, so any file that imports one is caught.
    """
    probe = f"""
import importlib.util, json, sys, time
baseline_start = time.perf_counter()
from airflow.sdk import DAG, Asset, TaskGroup, task  # Airflow's own cost, the baseline
baseline = time.perf_counter() - baseline_start
for path in {[str(f) for f in DAG_FILES]!r}:
    before = set(sys.modules)
    start = time.perf_counter()
    spec = importlib.util.spec_from_file_location("dag_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    elapsed = time.perf_counter() - start
    print(json.dumps({{"file": path, "seconds": elapsed, "baseline": baseline,
                       "heavy": [m for m in {HEAVY_MODULES!r}
                                 if m in sys.modules and m not in before]}}))
"""
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=900,  # bounds a hang; the SDK import alone has taken minutes under load
        env={
            "PYTHONPATH": str(ROOT / "plugins"),
            "PATH": "/usr/bin:/bin",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        },
    )
    assert result.returncode == 0, result.stderr[-3000:]
    reports = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return {Path(r["file"]).stem: r for r in reports}


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.stem)
def test_dag_file_imports_fast_without_heavy_modules(dag_file, parse_costs):
    """The real guard is that no heavy module is imported.

    Time is judged against importing the Airflow SDK in the same process, since
    shared machines vary tenfold in speed; bench/ reports the absolute figure.
    """
    report = parse_costs[dag_file.stem]
    assert report["heavy"] == []
    assert report["seconds"] < max(2.0, 2 * report["baseline"]), report

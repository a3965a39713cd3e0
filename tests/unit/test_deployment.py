"""docker-compose.yml cannot be started here (no Docker engine): it is checked by reading it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from civicflow.config import FEED_CONNECTIONS, WAREHOUSE_CONNECTION
from civicflow.feeds import FEEDS

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def pinned(package: str) -> str:
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line.lower().startswith(package + "=="):
            return line.split("==")[1]
    raise AssertionError(f"{package} is not pinned in requirements.lock")


def test_the_services_of_a_celery_deployment_are_there():
    assert {
        "postgres",
        "redis",
        "airflow-init",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-worker",
        "feed-simulator",
    } <= set(COMPOSE["services"])
    env = COMPOSE["x-airflow-common"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"


def test_the_image_is_built_on_the_pinned_airflow_version():
    base = re.search(r"^FROM apache/airflow:(\S+)", (ROOT / "Dockerfile").read_text(), re.M)[1]
    assert base.split("-")[0] == pinned("apache-airflow")
    assert COMPOSE["x-airflow-common"]["image"].endswith(":" + pinned("apache-airflow"))


def test_every_mounted_project_path_exists():
    for name, service in COMPOSE["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def test_connections_use_the_ids_of_the_feed_interfaces():
    env = COMPOSE["x-airflow-common"]["environment"]
    conn_ids = {
        k.removeprefix("AIRFLOW_CONN_").lower() for k in env if k.startswith("AIRFLOW_CONN_")
    }
    implemented = {FEED_CONNECTIONS[feed] for feed in FEEDS}
    assert implemented | {WAREHOUSE_CONNECTION} <= conn_ids
    assert conn_ids - {"civicflow_person_key"} <= set(FEED_CONNECTIONS.values()) | {
        WAREHOUSE_CONNECTION
    }
    feed = json.loads(env["AIRFLOW_CONN_POSITIONS_FEED"])
    assert feed["host"].startswith("http://feed-simulator:")


def test_warehouse_and_airflow_metadata_are_separate_databases():
    env = COMPOSE["x-airflow-common"]["environment"]
    metadata_db = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].rsplit("/", 1)[-1]
    warehouse_db = env["AIRFLOW_CONN_WAREHOUSE"].rsplit("/", 1)[-1]
    assert metadata_db != warehouse_db


def test_no_secret_is_written_into_the_compose_file():
    text = (ROOT / "docker-compose.yml").read_text()
    secrets = re.findall(r"^\s*([A-Z_]*(?:PASSWORD|SECRET|KEY)[A-Z_]*):\s*(.+)$", text, re.M)
    assert len(secrets) >= 5
    for name, value in secrets:
        assert "${" in value, (
            f"{name} is written into docker-compose.yml instead of taken from .env"
        )


@pytest.mark.parametrize("variable", ["CIVICFLOW_REPORT_DIR", "CIVICFLOW_GX_DIR"])
def test_shared_folders_are_volumes_every_airflow_service_mounts(variable):
    """The report and the GX results are written by workers and read by others."""
    folder = COMPOSE["x-airflow-common"]["environment"][variable]
    airflow_services = [n for n in COMPOSE["services"] if n.startswith("airflow-")]
    assert len(airflow_services) >= 6
    for name in airflow_services:
        mounts = {v.split(":")[1]: v.split(":")[0] for v in COMPOSE["services"][name]["volumes"]}
        assert mounts.get(folder) in COMPOSE["volumes"], f"{name} does not keep {folder}"
    assert folder in COMPOSE["services"]["airflow-init"]["command"][1]  # created and chowned

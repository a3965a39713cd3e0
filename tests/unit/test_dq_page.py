"""The Airflow plugin of the Data quality page: found by Airflow, cheap to load, protected."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_airflow_finds_the_plugin_in_the_plugins_folder(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CIVICFLOW"))}
    env.update(
        {
            "AIRFLOW_HOME": str(tmp_path),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "PYTHONPATH": str(ROOT / "plugins"),
        }
    )
    listed = subprocess.run(
        [str(Path(sys.executable).with_name("airflow")), "plugins", "--output", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert listed.returncode == 0, listed.stderr[-4000:]
    (plugin,) = json.loads(listed.stdout)
    assert plugin["name"] == "civicflow_data_quality"
    assert plugin["source"] == "$PLUGINS_FOLDER/civicflow_plugins.py"
    assert [(a["url_prefix"], a["app"]) for a in plugin["fastapi_apps"]] == [
        ("/civicflow", "fastapi.applications.FastAPI")
    ]
    (view,) = plugin["external_views"]
    assert (view["name"], view["href"], view["url_route"], view["destination"]) == (
        "Data quality",
        "civicflow/data-quality",  # relative, under whatever base URL the UI has
        "data-quality",
        "nav",
    )


def test_loading_the_plugin_loads_no_web_app_database_or_gx():
    """Every task loads the plugins folder (for macros); the page's weight stays out of it."""
    probe = (
        "import sys, civicflow_plugins; "
        "print([m for m in ('fastapi', 'psycopg', 'great_expectations', 'pandas', "
        "'civicflow.dq', 'airflow.api_fastapi.core_api.security') if m in sys.modules])"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins")}
    shown = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=300
    )
    assert shown.returncode == 0, shown.stderr[-4000:]
    assert shown.stdout.strip().splitlines()[-1] == "[]"


def test_every_route_requires_the_right_to_view_plugins():
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView

    from civicflow.airflow.dq_page import DataQualityPlugin

    (entry,) = DataQualityPlugin().fastapi_apps
    app = entry["app"]
    (dependency,) = app.router.dependencies  # on the app: every route, present and future
    check = dependency.dependency  # Airflow's own check, as its core API routes use it
    assert check.__qualname__ == "requires_access_view.<locals>.inner"
    assert inspect.getclosurevars(check).nonlocals["access_view"] is AccessView.PLUGINS
    assert {r.path for r in app.routes} == {
        "/data-quality",
        "/api/feeds",
        "/data-docs",
        "/data-docs/{path:path}",
    }
    assert DataQualityPlugin().fastapi_apps[0]["app"] is app  # built once

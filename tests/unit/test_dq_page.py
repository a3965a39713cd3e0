"""The Airflow plugin of the Data quality page: cheap to load, protected.

That Airflow finds it and shows it in its navigation is tested in a real api-server
(tests/integration/test_dq_page.py).
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


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

"""The Airflow UI's Data quality page: a FastAPI app in the api-server and its nav entry.

Airflow mounts the app at ``/civicflow`` and shows ``civicflow/data-quality`` in an
iframe from the nav. Airflow does not authenticate a plugin's app, so every route here
depends on the api-server's own check: the JWT of the UI's session cookie (or a bearer
token) and the right to view plugins; anything else gets 401 or 403. The warehouse is read
through the ``warehouse`` connection in a read-only session. Airflow loads this module in
every task too (for macros), so the app is built on first use, and the pipeline, psycopg
and Great Expectations only when a page is asked for.
"""

from __future__ import annotations

import logging
from functools import cache
from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

log = logging.getLogger(__name__)

URL_PREFIX = "/civicflow"
PAGE = "data-quality"
# The page loads nothing; the Data Docs load only their own files (their CDN assets and
# scripts are removed), and both may be framed by the Airflow UI only.
PAGE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"
DOCS_POLICY = (
    "default-src 'self'; script-src 'none'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-ancestors 'self'"
)


def _warehouse():
    """A read-only session on the warehouse of the ``warehouse`` connection."""
    import psycopg

    from civicflow.airflow.connections import warehouse_url

    return psycopg.connect(
        warehouse_url(),
        autocommit=True,
        connect_timeout=10,
        options="-c default_transaction_read_only=on -c statement_timeout=30000",
    )


def _quality() -> tuple[Any, list[Any]]:
    from civicflow import dq

    with _warehouse() as conn:
        return dq.collect(conn)


@cache
def create_app():
    """The FastAPI app behind the page: HTML, the same as JSON, and the GX Data Docs."""
    from pathlib import Path

    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import requires_access_view
    from fastapi import Depends, FastAPI, HTTPException
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse

    app = FastAPI(
        title="civicflow data quality",
        dependencies=[Depends(requires_access_view(AccessView.PLUGINS))],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    def unavailable(exc: Exception) -> HTMLResponse:
        from civicflow import dq

        log.exception("data quality page: the warehouse could not be read")
        return HTMLResponse(
            dq.render_error(
                f"The warehouse could not be read: {type(exc).__name__}: {exc}",
                "Check the api-server's Airflow connection warehouse (AIRFLOW_CONN_WAREHOUSE).",
            ),
            status_code=503,
            headers={"Content-Security-Policy": PAGE_POLICY, "Cache-Control": "no-store"},
        )

    @app.get(f"/{PAGE}", response_class=HTMLResponse)
    def page() -> HTMLResponse:
        from civicflow import dq

        try:
            now, feeds = _quality()
        except Exception as exc:  # shown to the operator, with the reason, and logged
            return unavailable(exc)
        return HTMLResponse(
            dq.render(now, feeds),
            headers={"Content-Security-Policy": PAGE_POLICY, "Cache-Control": "no-store"},
        )

    @app.get("/api/feeds")
    def feeds_json() -> JSONResponse:
        try:
            now, feeds = _quality()
        except Exception as exc:
            log.exception("data quality API: the warehouse could not be read")
            raise HTTPException(503, f"the warehouse could not be read: {exc}") from exc
        return JSONResponse(
            {"as_of": now.isoformat(), "feeds": [f.as_dict() for f in feeds]},
            headers={"Cache-Control": "no-store"},
        )

    @app.get("/data-docs")
    def docs_root() -> RedirectResponse:
        return RedirectResponse("data-docs/")  # the site's links are relative to its folder

    @app.get("/data-docs/{path:path}")
    def data_docs(path: str):
        from civicflow import dq
        from civicflow.feeds import all_entities
        from civicflow.validation import (
            DOCS_LIMIT,
            build_data_docs,
            gx_dir,
            kept_results,
            offline_page,
        )

        wanted = path or "index.html"
        site = gx_dir() / "data_docs"
        if wanted.endswith(".html"):
            site = build_data_docs()  # renders what was validated since the last visit
        if wanted == "index.html":  # GX's own index is drawn by scripts from CDNs
            return HTMLResponse(
                dq.render_docs_index(
                    kept_results()[:DOCS_LIMIT], [e.suite_name for e in all_entities()]
                ),
                headers={"Content-Security-Policy": PAGE_POLICY, "Cache-Control": "no-store"},
            )
        root = site.resolve()
        file = (root / wanted).resolve()
        if not file.is_relative_to(root) or not file.is_file():
            raise HTTPException(404, "no such Data Docs page")
        if file.suffix != ".html":
            return FileResponse(file, headers={"Cache-Control": "max-age=3600"})
        to_root = "../" * len(Path(wanted).parts[:-1])
        return HTMLResponse(
            offline_page(file.read_text(encoding="utf-8"), to_root),
            headers={"Content-Security-Policy": DOCS_POLICY, "Cache-Control": "no-store"},
        )

    return app


class DataQualityPlugin(AirflowPlugin):
    """The Data quality page, top level in the UI's nav, rendered in an iframe."""

    name = "civicflow_data_quality"
    external_views: ClassVar[list[dict[str, Any]]] = [
        {
            "name": "Data quality",
            "href": f"{URL_PREFIX.strip('/')}/{PAGE}",  # relative: works under any base URL
            "url_route": PAGE,
            "destination": "nav",
            "nav_top_level": True,
        }
    ]

    @property
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "civicflow data quality"}]

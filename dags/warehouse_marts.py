"""
### warehouse_marts

Refreshes the analysts' marts (`marts.position_monthly`, `elderly_coverage`,
`unreached_vulnerable`, `fifteen_minute_circle`, `volunteer_monthly`) whenever
a feed publishes into core, then writes the analysts' HTML report from them.

- **Schedule:** any of the core tables' Assets. An ingest DAG's merge emits its
  Asset only when its batch committed, so a failed or rejected batch never
  triggers a refresh.
- **Consistency:** each mart is a materialized view refreshed concurrently:
  analysts keep reading the previous contents until the new ones are complete.
  Two marts are refreshed at a time, on two warehouse connections.
  `marts.feed_health` is a plain view and always current.
- **Report:** after the refresh, `report` rewrites `warehouse-report.html` in
  `$CIVICFLOW_REPORT_DIR` (else `$CIVICFLOW_LOCAL_DIR/reports`, else the project's
  `.local/reports`): one self-contained page of charts for analysts, counts and
  rates only, replaced in one step. The task returns the file's path.
- **Owner:** civicflow data engineering.
"""

from __future__ import annotations

import datetime as dt

import pendulum
from airflow.sdk import DAG, AssetAny, task

from civicflow.airflow.ingest import LOCAL_TZ, OWNER, table_asset
from civicflow.alerts import notify_failure
from civicflow.feeds import all_entities

CORE_TABLES = sorted({entity.target for entity in all_entities()})

with DAG(
    dag_id="warehouse_marts",
    schedule=AssetAny(*(table_asset(table) for table in CORE_TABLES)),
    start_date=pendulum.datetime(2026, 11, 1, tz=LOCAL_TZ),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["civicflow", "marts"],
    default_args={
        "owner": OWNER,
        "retries": 2,
        "retry_delay": dt.timedelta(minutes=2),
        "on_failure_callback": notify_failure,
    },
) as dag:

    @task(task_id="refresh")
    def refresh() -> dict[str, float]:
        """Refresh every materialized mart, two at a time; returns the seconds each took."""
        from civicflow.airflow.connections import warehouse_url
        from civicflow.marts import refresh_all

        return refresh_all(warehouse_url())

    @task(task_id="report")
    def report() -> str:
        """Rewrite the analysts' HTML report from the refreshed marts; returns its path."""
        from civicflow.airflow.connections import warehouse_url
        from civicflow.pipeline import open_warehouse
        from civicflow.report import report_dir, write

        with open_warehouse(warehouse_url()) as conn:
            return str(write(conn, report_dir()))

    refresh() >> report()

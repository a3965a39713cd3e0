"""
### feed_watch

Hourly check that every feed delivers on its cadence and at its usual volume.
A finding fails the feed's task, and the failure is the alert: the task's
`on_failure_callback` (`civicflow.alerts.notify_failure`, also on every ingest
task and on `warehouse_marts`) reports it.

- **Tasks:** `check_<feed>`, one per feed in `civicflow.feeds`, each judging
  every entity of its feed, whether or not it was ever loaded.
- **Reads:** `meta.load_audit` only (connection `warehouse`; a login in the
  `analyst` role is enough). Nothing is written.
- **Rules** (thresholds and reasons in `civicflow.alerts.CADENCES`):
  - `never_loaded`: no batch of the entity ever succeeded;
  - `stale`: no batch succeeded for 26 h (the ingest DAGs run daily; the same
    limit as `marts.feed_health`);
  - `no_delivery`: the runs succeed but bring no rows: for 48 h from the daily
    register and positions, 4 days from the health and volunteer feeds (a
    weekend or a short holiday may be quiet), 41 days from the monthly
    elderly-care ledgers;
  - `volume_low`, `volume_high`: snapshots, lists and ledgers in rows per
    payload, against the median of the 7 delivery days before (below 50 % or
    above 3×; ledgers 25 % and 4×); the incremental health and volunteer feeds
    by their last 7 days' rows against the median week of the 4 before (below
    50 % or above 3×), so weekdays, weekends and catch-ups even out. Judged
    for 26 h after a delivery, never on less history or a median under 10 rows.
- **Alerts:** a finding raises `AirflowFailException`, so the task fails at
  once (retrying would find the same); an error reaching the warehouse is
  retried once. `CIVICFLOW_ALERT_CHANNEL` chooses `log` (the default: a
  WARNING line), `webhook` (JSON POSTed to `CIVICFLOW_ALERT_WEBHOOK` or the
  http connection `civicflow_alerts`) or `email` (to `CIVICFLOW_ALERT_EMAIL`,
  through Airflow's SMTP connection).
- **Owner:** civicflow data engineering.
"""

from __future__ import annotations

import datetime as dt

import pendulum
from airflow.sdk import DAG, task

from civicflow.airflow.ingest import LOCAL_TZ, OWNER
from civicflow.alerts import notify_failure
from civicflow.feeds import FEEDS

with DAG(
    dag_id="feed_watch",
    schedule="@hourly",
    start_date=pendulum.datetime(2026, 11, 1, tz=LOCAL_TZ),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["civicflow", "monitoring"],
    default_args={
        "owner": OWNER,
        "retries": 1,
        "retry_delay": dt.timedelta(minutes=5),
        "execution_timeout": dt.timedelta(minutes=10),
        "on_failure_callback": notify_failure,
    },
) as dag:

    @task
    def check(feed: str) -> int:
        """Judge every entity of ``feed``; fails with the findings, else returns how many."""
        from airflow.sdk.exceptions import AirflowFailException

        from civicflow.airflow.connections import warehouse_url
        from civicflow.alerts import FindingsError, check_feeds
        from civicflow.config import ConfigurationError
        from civicflow.warehouse import connect

        try:
            url = warehouse_url()
        except ConfigurationError as exc:
            raise AirflowFailException(str(exc)) from exc
        with connect(url) as conn:
            findings = check_feeds(conn, feeds=[feed])
        if findings:
            error = FindingsError(findings)
            raise AirflowFailException(str(error)) from error
        return len(FEEDS[feed])

    for feed in FEEDS:
        check.override(task_id=f"check_{feed}")(feed)

"""Builds a feed's ingest DAG from its description: per entity, extract → validate → merge.

Each merge publishes an Asset for the core table it writes, with the load id
and the row counts in the event's extra. Importing this module is cheap: the
pipeline (pandas, Great Expectations, psycopg) is imported inside the tasks.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from airflow.sdk import DAG, Asset, TaskGroup, task

from civicflow.alerts import notify_failure
from civicflow.spec import Entity

OWNER = "civicflow-data-engineering"
ASSET_BASE_ENV = "CIVICFLOW_WAREHOUSE_ASSET_URI"
DEFAULT_ASSET_BASE = "postgres://warehouse:5432/civicflow"
LOCAL_TZ = "Asia/Shanghai"


def table_asset(table: str) -> Asset:
    """The Asset of a warehouse table: ``postgres://host:port/database/schema/table``."""
    schema, name = table.split(".")
    base = os.environ.get(ASSET_BASE_ENV, DEFAULT_ASSET_BASE).rstrip("/")
    return Asset(uri=f"{base}/{schema}/{name}", name=table, group="warehouse")


def _interval_days(context: dict[str, Any]) -> tuple[dt.date, dt.date]:
    """First and last local day a run covers.

    A scheduled run covers its data interval [start, end); a manual run, whose
    interval is a single instant, covers the local day of its logical date.
    """
    import pendulum

    start = context.get("data_interval_start")
    end = context.get("data_interval_end")
    if start is None or end is None:
        start = end = context.get("logical_date") or pendulum.now(LOCAL_TZ).subtract(days=1)
    start_local = pendulum.instance(start).in_timezone(LOCAL_TZ)
    end_local = pendulum.instance(end).in_timezone(LOCAL_TZ)
    if end_local <= start_local:
        return start_local.date(), start_local.date()
    return start_local.date(), end_local.subtract(microseconds=1).date()


@contextmanager
def _permanent_errors_fail_fast() -> Iterator[None]:
    """Fail without retries when retrying cannot help: configuration, rejected data, 4xx."""
    from airflow.sdk.exceptions import AirflowFailException

    from civicflow.config import ConfigurationError
    from civicflow.httpclient import FeedError
    from civicflow.pipeline import BatchRejected, SchemaDriftError

    try:
        yield
    except (ConfigurationError, BatchRejected, SchemaDriftError) as exc:
        raise AirflowFailException(str(exc)) from exc
    except FeedError as exc:
        if exc.status is not None and 400 <= exc.status < 500 and exc.status != 429:
            raise AirflowFailException(str(exc)) from exc
        raise


def _entity_group(entity: Entity) -> TaskGroup:
    feed, name = entity.feed, entity.name
    asset = table_asset(entity.target)

    @task(task_id="extract")
    def extract(**context: Any) -> str:
        from civicflow.airflow.connections import feed_settings, person_key, warehouse_url
        from civicflow.feeds import entity as lookup
        from civicflow.pipeline import extract as run

        with _permanent_errors_fail_fast():
            person_key()  # refuse to start without a proper secret, whatever the feed
            start, end = _interval_days(context)
            return run(
                lookup(feed, name),
                feed_settings(feed),
                warehouse_url(),
                start,
                end,
                run_id=context["run_id"],
            )

    @task(task_id="validate")
    def validate(load_id: str) -> dict[str, Any]:
        from civicflow.airflow.connections import person_key, warehouse_url
        from civicflow.feeds import entity as lookup
        from civicflow.pipeline import validate as run

        with _permanent_errors_fail_fast():
            secret = person_key() if entity.uses_person_key else None
            return run(lookup(feed, name), warehouse_url(), load_id, secret).as_dict()

    @task(task_id="merge", outlets=[asset])
    def merge(load_id: str, **context: Any) -> dict[str, Any]:
        from civicflow.airflow.connections import warehouse_url
        from civicflow.feeds import entity as lookup
        from civicflow.pipeline import merge as run

        with _permanent_errors_fail_fast():
            summary = run(lookup(feed, name), warehouse_url(), load_id).as_dict()
        context["outlet_events"][asset].extra = {
            k: summary[k]
            for k in (
                "load_id",
                "source_rows",
                "accepted_rows",
                "quarantined_rows",
                "duplicate_rows",
                "inserted_rows",
                "updated_rows",
                "watermark",
            )
        }
        return summary

    with TaskGroup(group_id=name, tooltip=entity.description) as group:
        load_id = extract()
        checked = validate(load_id)
        merged = merge(load_id)
        checked >> merged
    return group


def ingest_dag(
    dag_id: str,
    entities: Sequence[Entity],
    doc_md: str | None,
    schedule: str = "@daily",
    start_date: dt.datetime | None = None,
    tags: Sequence[str] = (),
) -> DAG:
    """One DAG for one feed; entities run in the order given (references first)."""
    import pendulum

    with DAG(
        dag_id=dag_id,
        schedule=schedule,
        start_date=start_date or pendulum.datetime(2026, 11, 1, tz=LOCAL_TZ),
        catchup=False,
        max_active_runs=1,
        doc_md=doc_md,
        tags=["civicflow", "ingest", *tags],
        default_args={
            "owner": OWNER,
            "retries": 2,
            "retry_delay": dt.timedelta(minutes=2),
            "retry_exponential_backoff": True,
            "on_failure_callback": notify_failure,  # once retries are spent: feed, batch, reason
        },
    ) as dag:
        previous = None
        for entity in entities:
            group = _entity_group(entity)
            if previous is not None:
                previous >> group
            previous = group
    return dag

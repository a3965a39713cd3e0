"""Backfills: re-running a range of days already loaded changes nothing.

A warehouse is loaded from the simulator one day at a time, as the daily
schedule would (each run covers its logical day, as ``_interval_days`` gives it
for a scheduled or a backfill run). Then the middle of the range is run again,
as ``airflow backfill create --reprocess-behavior completed`` would. The
warehouse must hold exactly what the uninterrupted runs left (checksums of every
core table, bookkeeping columns aside), no backfill batch may insert or update a
row, every batch's audit must add up, and no watermark may move back.
"""

from __future__ import annotations

import datetime as dt

import pendulum
import psycopg
import pytest
from psycopg import sql

from civicflow.airflow.ingest import LOCAL_TZ, _interval_days
from civicflow.config import FeedSettings
from civicflow.feeds.civil_affairs import REGISTER
from civicflow.feeds.health import SERVICE_RECORDS
from civicflow.feeds.positions import COMMUNITIES, POSITIONS, STREETS, VISITS
from civicflow.pipeline import run_entity
from civicflow.simulator.server import DEMO_CLIENT, DEMO_REGISTER_LOGIN, RunningSimulator

from ..conftest import fast_client

AS_OF = dt.date(2026, 11, 27)  # register snapshots 2026-11-20 .. 2026-11-26
DAYS = [AS_OF - dt.timedelta(days=n) for n in range(4, 0, -1)]  # 23 .. 26 November
BACKFILL = DAYS[1:3]
SECRET = b"a-test-secret-of-32-bytes-length"
BOOKKEEPING = {"load_id", "closed_by_load_id", "updated_at"}


@pytest.fixture
def simulator_of_the_week():
    with RunningSimulator(port=0, scale=0.002, as_of=AS_OF) as running:
        yield running


def daily_run(simulator: RunningSimulator, url: str, day: dt.date, run_id: str) -> list:
    """What one run of each ingest DAG does for its logical day, references first."""

    def settings(feed: str, auth=None) -> FeedSettings:
        return FeedSettings(feed, f"{simulator.url}/{feed}", auth=auth)

    batches = []
    for entity, feed in (
        (STREETS, settings("positions")),
        (COMMUNITIES, settings("positions")),
        (POSITIONS, settings("positions")),
        (VISITS, settings("positions")),
        (REGISTER, settings("civil_affairs", DEMO_REGISTER_LOGIN)),
        (SERVICE_RECORDS, settings("health", DEMO_CLIENT)),
    ):
        client = fast_client(feed)
        batches.append(run_entity(entity, feed, url, day, day, run_id, client, SECRET))
    return batches


def checksums(url: str) -> dict[str, tuple[int, str]]:
    """Rows and an md5 of every core table's content, without the bookkeeping columns."""
    out = {}
    with psycopg.connect(url) as conn:
        tables = [t for (t,) in conn.execute(
            "select table_name from information_schema.tables where table_schema = 'core' "
            "and table_type = 'BASE TABLE' order by 1"
        )]  # fmt: skip
        for table in tables:
            columns = [c for (c,) in conn.execute(
                "select column_name from information_schema.columns "
                "where table_schema = 'core' and table_name = %s order by ordinal_position",
                (table,),
            ) if c not in BOOKKEEPING]  # fmt: skip
            row = sql.SQL("row({})::text").format(sql.SQL(", ").join(map(sql.Identifier, columns)))
            query = sql.SQL(
                "select count(*), md5(coalesce(string_agg({r}, '|' order by {r}), '')) from {t}"
            ).format(r=row, t=sql.Identifier("core", table))
            out[table] = conn.execute(query).fetchone()
    return out


def watermarks(url: str) -> dict[tuple[str, str], str]:
    with psycopg.connect(url) as conn:
        return {
            (feed, entity): mark
            for feed, entity, mark in conn.execute(
                "select feed, entity, watermark from meta.feed_state"
            )
        }


def test_a_backfill_run_covers_its_logical_day_as_the_scheduled_run_did():
    day = pendulum.datetime(2026, 11, 23, tz=LOCAL_TZ)
    scheduled = {"data_interval_start": day, "data_interval_end": day.add(days=1)}
    assert _interval_days(scheduled) == (dt.date(2026, 11, 23), dt.date(2026, 11, 23))


def test_backfilling_days_already_loaded_leaves_the_warehouse_as_it_was(
    simulator_of_the_week, warehouse_url
):
    sim = simulator_of_the_week
    for day in DAYS:
        daily_run(sim, warehouse_url, day, f"scheduled__{day}")
    uninterrupted = checksums(warehouse_url)
    marks = watermarks(warehouse_url)
    assert uninterrupted["fact_position_day"][0] > 0 and uninterrupted["dim_person"][0] > 0
    assert uninterrupted["fact_service"][0] > 0
    assert marks[("positions", "visits")] == DAYS[-1].isoformat()

    for day in BACKFILL:
        for batch in daily_run(sim, warehouse_url, day, f"backfill__{day}"):
            assert (batch.inserted_rows, batch.updated_rows) == (0, 0), batch

    assert checksums(warehouse_url) == uninterrupted
    assert watermarks(warehouse_url) == marks
    with psycopg.connect(warehouse_url) as conn:
        audits = conn.execute(
            "select count(*), count(*) filter (where run_id like 'backfill__%%'), "
            "count(*) filter (where source_rows <> accepted_rows + quarantined_rows "
            "+ duplicate_rows) from meta.load_audit"
        ).fetchone()
    assert audits == (6 * (len(DAYS) + len(BACKFILL)), 6 * len(BACKFILL), 0)

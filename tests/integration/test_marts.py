"""The marts on the hand-made district of ``small_district`` (see there for its rows).

The expected numbers are worked out here, not queried the way the marts query.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import psycopg
import pytest

from civicflow.pipeline import open_warehouse

from .small_district import C1, C1_AT, C2, C2_AT, P1_AT, P3_AT, S1, B, haversine_m


def rows(url: str, query: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchall()


def test_coverage_counts_registered_elderly_at_month_end_and_completed_services(district):
    coverage = {
        (month, community): rest
        for month, _, community, *rest in rows(
            district, "select * from marts.elderly_coverage order by month, community_code"
        )
    }
    sep, oct_ = dt.date(2026, 9, 1), dt.date(2026, 10, 1)
    assert set(coverage) == {(sep, C1), (sep, C2), (oct_, C1), (oct_, C2)}
    # registered, served any, meals, day care, health, volunteer help, rate
    assert coverage[sep, C1] == [1, 1, 0, 0, 0, 1, Decimal(1)]  # G, helped by a volunteer
    assert coverage[sep, C2] == [0, 0, 0, 0, 0, 0, None]
    # A ate at a canteen, B's check-up was cancelled, D was reached by nobody; E is under 60,
    # F moved away, G lives in C2 on 31 October.
    assert coverage[oct_, C1][:6] == [3, 1, 1, 0, 0, 0]
    assert coverage[oct_, C1][6] == pytest.approx(Decimal(1) / 3)
    assert coverage[oct_, C2] == [1, 0, 0, 0, 0, 0, Decimal(0)]


def test_the_outreach_list_holds_only_current_registered_vulnerable_elderly_unreached(district):
    listed = rows(district, "select * from marts.unreached_vulnerable")
    # A ate on 10 October (the newest completed service); B's only service was cancelled;
    # D, E and G are in no vulnerable category; F moved away.
    assert listed == [(B, C1, ["高龄老人"], None, None)]


def test_position_month_sums_tallies_confirmed_hours_and_completed_services(district):
    assert rows(district, "select * from marts.position_monthly") == [
        (dt.date(2026, 10, 1), "P1", "community", S1, 1, 5, 30, Decimal("4.0"), 1, 1)
    ]


def test_volunteer_month_counts_confirmed_hours_where_the_activity_was(district):
    assert rows(district, "select * from marts.volunteer_monthly order by month") == [
        (dt.date(2026, 10, 1), S1, 2, Decimal("4.0"), 1, Decimal("0.5")),
        (dt.date(2026, 11, 1), S1, 0, Decimal(0), 1, None),
    ]


def test_fifteen_minute_circle_measures_great_circle_distances_to_open_positions(district):
    circle = {c: rest for c, *rest in rows(district, "select * from marts.fifteen_minute_circle")}
    assert circle[C1][0] == "P1" and circle[C2][0] == "P3"  # P2 is closed
    assert float(circle[C1][1]) == pytest.approx(haversine_m(C1_AT, P1_AT), abs=0.1)
    assert float(circle[C2][1]) == pytest.approx(haversine_m(C2_AT, P3_AT), abs=0.1)
    assert 100 < haversine_m(C1_AT, P1_AT) < 110 and haversine_m(C1_AT, P3_AT) < 1000
    assert circle[C1][2:] == [2, 3]  # P1 and P3; 综合接待, 长者服务, 法律服务
    assert circle[C2][2:] == [0, 0]


def test_feed_health_tells_ok_stale_and_failing_feeds(district):
    with psycopg.connect(district, autocommit=True) as conn:
        audit = (
            "insert into meta.load_audit (load_id, feed, entity, status, started_at, "
            "finished_at, source_rows, accepted_rows, quarantined_rows) "
            "values (%s, %s, %s, %s, now() - %s::interval, now() - %s::interval, %s, %s, %s)"
        )
        for feed, entity, status, ago, source, accepted, quarantined in (
            ("health", "service_records", "succeeded", "1 hour", 100, 95, 5),
            ("positions", "streets", "succeeded", "30 hours", 18, 18, 0),
            ("volunteer", "volunteers", "succeeded", "3 hours", 10, 10, 0),
            ("volunteer", "volunteers", "rejected", "2 hours", 10, 7, 3),
        ):
            load_id = uuid.uuid4()
            conn.execute(
                audit, (load_id, feed, entity, status, ago, ago, source, accepted, quarantined)
            )
            if feed == "health":
                conn.execute(
                    "insert into meta.feed_state (feed, entity, watermark, load_id) "
                    "values (%s, %s, '2026-10-12T10:00:00+08:00', %s)",
                    (feed, entity, load_id),
                )
    health = {
        feed: rest
        for feed, *rest in rows(
            district,
            "select feed, last_snapshot_or_watermark, rows_last_load, quarantined_last_load, "
            "quarantine_rate, hours_since_success, status from marts.feed_health",
        )
    }
    assert health["health"] == ["2026-10-12T10:00:00+08:00", 100, 5, Decimal("0.05"),
                                Decimal("1.0"), "ok"]  # fmt: skip
    assert health["positions"][-1] == "stale" and health["positions"][-2] == Decimal("30.0")
    assert health["volunteer"][-1] == "failing"


def test_analysts_read_every_mart_and_the_person_history(district):
    with psycopg.connect(district, autocommit=True) as conn:
        conn.execute("set role analyst")
        counts = {
            name: conn.execute(f"select count(*) from marts.{name}").fetchone()[0]  # noqa: S608
            for name in (
                "position_monthly",
                "elderly_coverage",
                "unreached_vulnerable",
                "fifteen_minute_circle",
                "volunteer_monthly",
                "feed_health",
            )
        }
        assert counts["elderly_coverage"] == 4 and counts["unreached_vulnerable"] == 1
        assert conn.execute("select count(*) from core.dim_person").fetchone()[0] == 7
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select * from quarantine.rejected_row")


def test_every_object_analysts_read_is_commented_and_the_dictionary_is_current(warehouse_url):
    from pathlib import Path

    from civicflow.dictionary import missing_comments, render

    committed = Path(__file__).resolve().parents[2] / "docs" / "data-dictionary.md"
    with open_warehouse(warehouse_url) as conn:
        assert missing_comments(conn) == []
        assert "### marts.elderly_coverage (materialized view)" in render(conn)
        assert render(conn) == committed.read_text(encoding="utf-8"), "run `make dictionary`"


def test_the_readme_queries_run_as_an_analyst(district):
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Querying the warehouse", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sql", 1)[1].split("```", 1)[0]
    queries = [q.strip() for q in block.split(";") if q.strip()]
    assert len(queries) == 6
    with psycopg.connect(district, autocommit=True) as conn:
        conn.execute("set role analyst")
        answered = [len(conn.execute(q).fetchall()) for q in queries]
    assert all(answered[:5]), answered  # feed_health is empty: no batch was loaded here


def test_marts_refreshed_two_at_a_time_report_each_and_a_failure_after_the_others(district):
    from civicflow.marts import MARTS, refresh_all

    visitors = "select sum(visitors) from marts.position_monthly"
    with psycopg.connect(district, autocommit=True) as conn:
        before = conn.execute(visitors).fetchone()[0]
        conn.execute("update core.fact_position_day set visitors = visitors + 1")
        days = conn.execute("select count(*) from core.fact_position_day").fetchone()[0]
        took = refresh_all(district)
        assert sorted(took) == sorted(MARTS) and all(s >= 0 for s in took.values())
        assert conn.execute(visitors).fetchone()[0] == before + days

        # Without its unique index a mart cannot be refreshed concurrently: the refresh
        # fails, naming it, and every other mart was refreshed all the same.
        conn.execute("update core.fact_position_day set visitors = visitors + 1")
        index = conn.execute(
            "select indexrelid::regclass::text from pg_index "
            "where indrelid = 'marts.elderly_coverage'::regclass and indisunique"
        ).fetchone()[0]
        conn.execute(f"drop index {index}")
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="elderly_coverage"):
            refresh_all(district)
        assert conn.execute(visitors).fetchone()[0] == before + 2 * days

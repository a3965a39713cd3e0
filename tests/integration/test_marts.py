"""The marts on a district small enough to check by hand.

One street, two communities, three positions; a few people with their
history, services, activities and volunteer hours, each placed to test one
rule (a cancelled check-up does not count, a move changes the community at
month end, revoked hours and cancelled activities never count). The expected
numbers are worked out here, not queried the way the marts query.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from decimal import Decimal

import psycopg
import pytest

from civicflow.marts import refresh
from civicflow.pipeline import open_warehouse

LOAD = uuid.uuid4()
S1 = "440104001"
C1, C2 = "440104001001", "440104001002"
C1_AT, C2_AT = (113.270, 23.130), (113.300, 23.130)
P1_AT, P2_AT, P3_AT = (113.271, 23.130), (113.300, 23.130), (113.275, 23.130)
A, B, D, E, F, G = (f"{n:064x}" for n in range(1, 7))  # person keys


def haversine_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    (lon1, lat1), (lon2, lat2) = (tuple(map(math.radians, p)) for p in (a, b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371008.8 * math.asin(math.sqrt(h))


def person(key, born, community, valid_from, valid_to=None, status="在册", categories=()):
    return (key, "F", born, S1, community, list(categories), status, valid_from, valid_to,
            valid_to is None, LOAD)  # fmt: skip


def service(sid, key, area, day, status="completed", position=None, community=None):
    return (sid, "test", sid, key, area, area, position, community, S1, day, 1, "x", status, LOAD)


@pytest.fixture
def district(warehouse_url):
    d = dt.date
    with open_warehouse(warehouse_url) as conn, conn.transaction():
        conn.execute(
            "insert into core.dim_street (street_code, street_name, district_code, load_id) "
            "values (%s, '北京街道', '440104', %s)",
            (S1, LOAD),
        )
        with conn.cursor() as cur:
            cur.executemany(
                "insert into core.dim_community (community_code, community_name, street_code, "
                "longitude, latitude, load_id) values (%s, %s, %s, %s, %s, %s)",
                [(C1, "一社区", S1, *C1_AT, LOAD), (C2, "二社区", S1, *C2_AT, LOAD)],
            )
            cur.executemany(
                "insert into core.dim_position (position_code, position_name, level, street_code, "
                "community_code, longitude, latitude, services, status, load_id) "
                "values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    ("P1", "一社区党群服务站", "community", S1, C1, *P1_AT,
                     ["综合接待", "长者服务"], "open", LOAD),
                    ("P2", "二社区党群服务站", "community", S1, C2, *P2_AT, ["综合接待"],
                     "closed", LOAD),
                    ("P3", "北京街党群服务中心", "street", S1, None, *P3_AT,
                     ["综合接待", "法律服务"], "open", LOAD),
                ],
            )  # fmt: skip
            cur.executemany(
                "insert into core.dim_person (person_key, gender, birth_year, street_code, "
                "community_code, categories, registry_status, valid_from, valid_to, is_current, "
                "load_id) values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    person(A, 1950, C1, d(2026, 10, 1), categories=["独居老人"]),
                    person(B, 1940, C1, d(2026, 10, 1), categories=["高龄老人"]),
                    person(D, 1955, C1, d(2026, 10, 1)),
                    person(E, 1990, C1, d(2026, 10, 1), categories=["残疾人"]),  # under 60
                    person(F, 1945, C1, d(2026, 10, 1), status="迁出", categories=["独居老人"]),
                    person(G, 1950, C1, d(2026, 9, 1), d(2026, 10, 15)),  # moves at mid-month
                    person(G, 1950, C2, d(2026, 10, 15)),
                ],
            )
            cur.executemany(
                "insert into core.fact_service (service_id, source_feed, source_record_id, "
                "person_key, service_area, service_type, position_code, community_code, "
                "street_code, service_date, quantity, unit, status, load_id) "
                "values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    service("s1", A, "meals", d(2026, 10, 10), position="P1", community=C1),
                    service("s2", B, "health", d(2026, 10, 12), status="cancelled"),
                    service("s3", D, "meals", d(2026, 10, 11), "cancelled", "P1", C1),
                    service("s4", G, "volunteer_help", d(2026, 9, 20)),
                ],
            )
            cur.executemany(
                "insert into core.fact_position_day (position_code, visit_date, visitors, "
                "activities_held, participants, load_id) values (%s, %s, %s, %s, %s, %s)",
                [("P1", d(2026, 10, 1), 10, 1, 5, LOAD), ("P1", d(2026, 10, 2), 20, 0, 0, LOAD)],
            )
            cur.executemany(
                "insert into core.dim_volunteer (volunteer_id, is_party_member, registered_at, "
                "load_id) values (%s, %s, '2025-01-01T00:00:00+08:00', %s)",
                [("V1", True, LOAD), ("V2", False, LOAD)],
            )
            cur.executemany(
                "insert into core.fact_activity (activity_id, source_feed, category, "
                "position_code, street_code, start_at, end_at, status, load_id) "
                "values (%s, 'test', 'lecture', 'P1', %s, %s, %s, %s, %s)",
                [
                    ("ACT1", S1, "2026-10-05T09:00:00+08:00", "2026-10-05T11:00:00+08:00",
                     "finished", LOAD),
                    ("ACT2", S1, "2026-10-06T09:00:00+08:00", "2026-10-06T11:00:00+08:00",
                     "cancelled", LOAD),
                    # 00:30 on 1 November in Shanghai is still 31 October in UTC
                    ("ACT3", S1, "2026-11-01T00:30:00+08:00", "2026-11-01T02:00:00+08:00",
                     "published", LOAD),
                ],
            )  # fmt: skip
            cur.executemany(
                "insert into core.fact_volunteer_hours (record_id, activity_id, volunteer_id, "
                "position_code, street_code, service_date, hours, status, load_id) "
                "values (%s, %s, %s, 'P1', %s, %s, %s, %s, %s)",
                [
                    ("H1", "ACT1", "V1", S1, d(2026, 10, 5), 2.5, "confirmed", LOAD),
                    ("H2", "ACT1", "V2", S1, d(2026, 10, 5), 1.5, "confirmed", LOAD),
                    ("H3", "ACT1", "V1", S1, d(2026, 10, 5), 3, "revoked", LOAD),
                    ("H4", "ACT2", "V2", S1, d(2026, 10, 6), 4, "confirmed", LOAD),
                ],
            )
        refresh(conn)
    return warehouse_url


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

"""A district small enough to check by hand, written straight into core.

One street, two communities, three positions; a few people with their
history, services, activities and volunteer hours, each placed to test one
rule (a cancelled check-up does not count, a move changes the community at
month end, revoked hours and cancelled activities never count). Tests work
out their expected numbers from these rows, not by querying the way the
marts query.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid

from civicflow.marts import refresh_all
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
    return (
        f"test:{sid}",
        "test",
        sid,
        key,
        area,
        area,
        position,
        community,
        S1,
        day,
        1,
        "x",
        status,
        LOAD,
    )


def build(warehouse_url: str) -> str:
    """Write the district into an empty warehouse and refresh the marts; returns the URL."""
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
    refresh_all(warehouse_url)  # as warehouse_marts does: two marts at a time
    return warehouse_url

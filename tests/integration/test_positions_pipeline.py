"""The positions feed end to end: simulator over real HTTP, embedded PostgreSQL, real GX."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import urllib.request

import psycopg
import pytest

from civicflow.feeds.positions import ENTITIES, VISITS
from civicflow.geo import great_circle_m
from civicflow.httpclient import FeedError
from civicflow.pipeline import BatchRejected, run_entity
from civicflow.simulator.world import visits_document
from civicflow.warehouse import migrate

from ..conftest import fast_client

DAY = dt.date(2026, 11, 20)
DAYS = [DAY - dt.timedelta(days=2), DAY - dt.timedelta(days=1), DAY]  # the default look-back


def sim_post(simulator, path: str, document=None) -> dict:
    data = json.dumps(document).encode() if document is not None else b""
    request = urllib.request.Request(f"{simulator.url}{path}", data=data, method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


def load_all(positions_feed, warehouse_url, client=None, entities=ENTITIES):
    return [
        run_entity(
            e,
            positions_feed,
            warehouse_url,
            DAY,
            DAY,
            "test",
            client or fast_client(positions_feed),
        )
        for e in entities
    ]


def scalar(url: str, query: str, params=()):
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchone()[0]


def core_snapshot(url: str) -> dict[str, list]:
    with psycopg.connect(url) as conn:
        return {
            table: conn.execute(f"select * from core.{table} order by 1, 2").fetchall()  # noqa: S608
            for table in ("dim_street", "dim_community", "dim_position", "fact_position_day")
        }


def test_a_full_load_lands_the_whole_network_once(simulator, positions_feed, warehouse_url):
    summaries = load_all(positions_feed, warehouse_url)
    district = simulator.state.district
    open_per_day = sum(len(visits_document(district, d)) for d in DAYS)

    assert [s.status for s in summaries] == ["succeeded"] * 4
    assert scalar(warehouse_url, "select count(*) from core.dim_street") == 18
    assert scalar(warehouse_url, "select count(*) from core.dim_community") == 222
    assert scalar(warehouse_url, "select count(*) from core.dim_position") == 254
    assert scalar(warehouse_url, "select count(*) from core.fact_position_day") == open_per_day
    levels = dict(
        psycopg.connect(warehouse_url)
        .execute("select level, count(*) from core.dim_position group by level")
        .fetchall()
    )
    assert levels == {"district": 1, "street": 18, "community": 222, "public_space": 13}
    # Every batch is audited and adds up; raw holds every payload with its checksum.
    with psycopg.connect(warehouse_url) as conn:
        audits = conn.execute(
            "select entity, status, source_rows, accepted_rows, quarantined_rows, duplicate_rows, "
            "inserted_rows from meta.load_audit order by started_at"
        ).fetchall()
        assert [a[0] for a in audits] == ["streets", "communities", "positions", "visits"]
        for _, status, source, accepted, quarantined, duplicates, inserted in audits:
            assert status == "succeeded"
            assert source == accepted + quarantined + duplicates == inserted
        assert (
            conn.execute("select count(*) from raw.payload where length(sha256) = 64").fetchone()[0]
            == 6
        )
        state = conn.execute(
            "select watermark from meta.feed_state where entity = 'visits'"
        ).fetchone()[0]
        assert state == DAY.isoformat()


def test_coordinates_are_stored_in_wgs84(simulator, positions_feed, warehouse_url):
    load_all(positions_feed, warehouse_url, entities=ENTITIES[:3])
    truth = {c.code: c for c in simulator.state.district.communities}
    with psycopg.connect(warehouse_url) as conn:
        rows = conn.execute("select community_code, longitude, latitude from core.dim_community")
        errors = [
            great_circle_m(lon, lat, truth[code].longitude, truth[code].latitude)
            for code, lon, lat in rows
        ]
    assert len(errors) == 222
    assert max(errors) < 0.05  # metres; the served GCJ-02 was ~500 m away


def test_street_and_community_spellings_resolve_to_codes(simulator, positions_feed, warehouse_url):
    load_all(positions_feed, warehouse_url, entities=ENTITIES[:3])
    expected = {
        p.position_code: (
            p.street.code if p.street else None,
            p.community.code if p.community else None,
        )
        for p in simulator.state.district.positions
    }
    with psycopg.connect(warehouse_url) as conn:
        got = {
            code: (s, c)
            for code, s, c in conn.execute(
                "select position_code, street_code, community_code from core.dim_position"
            )
        }
    assert got == expected


def test_a_second_run_without_upstream_change_adds_nothing(
    simulator, positions_feed, warehouse_url
):
    load_all(positions_feed, warehouse_url)
    before = core_snapshot(warehouse_url)
    second = load_all(positions_feed, warehouse_url)
    assert core_snapshot(warehouse_url) == before
    for summary in second:
        assert summary.inserted_rows == 0 and summary.updated_rows == 0
        assert summary.unchanged_rows == summary.accepted_rows > 0


def test_a_429_storm_and_a_503_in_the_middle_still_load_everything_once(
    simulator, positions_feed, warehouse_url
):
    sim_post(
        simulator,
        "/_sim/faults",
        {
            "rules": [
                {
                    "path": "/positions/visits",
                    "kind": "status",
                    "status": 429,
                    "retry_after": "1",
                    "times": 3,
                },
                {"path": "/positions/positions", "kind": "status", "status": 503, "times": 2},
                {"path": "/positions/divisions", "kind": "reset", "times": 1},
            ]
        },
    )
    summaries = load_all(positions_feed, warehouse_url)
    stats = json.load(urllib.request.urlopen(f"{simulator.url}/_sim/stats", timeout=5))["requests"]
    assert stats["/positions/positions"] == 3  # two 503s, then success
    assert stats["/positions/visits"] == 3 + 3  # three 429s, then the three days
    assert all(s.status == "succeeded" for s in summaries)
    open_per_day = sum(len(visits_document(simulator.state.district, d)) for d in DAYS)
    assert scalar(warehouse_url, "select count(*) from core.fact_position_day") == open_per_day
    assert scalar(warehouse_url, "select count(*) from core.dim_position") == 254
    attempts = dict(
        psycopg.connect(warehouse_url)
        .execute("select entity, http_attempts - payloads from meta.load_audit")
        .fetchall()
    )
    assert attempts == {"streets": 1, "communities": 0, "positions": 2, "visits": 3}


def test_a_resent_corrected_day_updates_rather_than_duplicates(
    simulator, positions_feed, warehouse_url
):
    load_all(positions_feed, warehouse_url)
    count = scalar(warehouse_url, "select count(*) from core.fact_position_day")
    sim_post(simulator, f"/_sim/correct?date={DAYS[1].isoformat()}")
    summary = run_entity(VISITS, positions_feed, warehouse_url, DAY, DAY, "test")
    corrected = {
        r["position_code"]: r for r in visits_document(simulator.state.district, DAYS[1], 1)
    }
    assert scalar(warehouse_url, "select count(*) from core.fact_position_day") == count
    with psycopg.connect(warehouse_url) as conn:
        rows = conn.execute(
            "select position_code, visitors, activities_held, participants "
            "from core.fact_position_day where visit_date = %s",
            (DAYS[1],),
        ).fetchall()
    assert {r[0]: r[1:] for r in rows} == {
        c: (v["visitors"], v["activities_held"], v["participants"]) for c, v in corrected.items()
    }
    original = {r["position_code"]: r for r in visits_document(simulator.state.district, DAYS[1])}
    assert summary.updated_rows == sum(1 for c, v in corrected.items() if v != original[c]) > 0
    assert summary.inserted_rows == 0


def test_malformed_records_land_in_quarantine_with_their_reasons(
    simulator, positions_feed, warehouse_url
):
    load_all(positions_feed, warehouse_url, entities=ENTITIES[:3])
    sim_post(
        simulator,
        "/_sim/faults",
        {
            "rules": [
                {
                    "path": "/positions/visits",
                    "kind": "bad_record",
                    "field": "visitors",
                    "value": "many",
                    "index": 0,
                    "times": 1,
                },
                {
                    "path": "/positions/visits",
                    "kind": "bad_record",
                    "field": "participants",
                    "value": -5,
                    "index": 1,
                    "times": 1,
                },
                {
                    "path": "/positions/visits",
                    "kind": "bad_record",
                    "field": "position_code",
                    "value": "NO-SUCH-POSITION",
                    "index": 2,
                    "times": 1,
                },
            ]
        },
    )
    summary = run_entity(
        VISITS, positions_feed, warehouse_url, DAY, DAY, "test", fast_client(positions_feed)
    )
    assert summary.status == "succeeded"
    assert summary.quarantined_rows == 3
    assert summary.source_rows == summary.accepted_rows + 3
    with psycopg.connect(warehouse_url) as conn:
        rejected = conn.execute(
            "select record, reasons, failed_expectations from quarantine.rejected_row "
            "where load_id = %s order by source_index",
            (summary.load_id,),
        ).fetchall()
        dq = dict(
            conn.execute(
                "select expectation, unexpected_count from meta.dq_result where load_id = %s",
                (summary.load_id,),
            ).fetchall()
        )
    reasons = [r[1] for r in rejected]
    assert ["field visitors: not an integer ('many')"] in reasons
    assert ["failed expect_column_values_to_be_between(participants)"] in reasons
    assert ["unknown position 'NO-SUCH-POSITION'"] in reasons
    assert any(r[0]["visitors"] == "many" for r in rejected)  # the original value is kept
    assert dq["expect_column_values_to_be_between(participants)"] == 1


def test_a_batch_over_its_rejection_threshold_publishes_nothing(
    simulator, positions_feed, warehouse_url
):
    load_all(positions_feed, warehouse_url, entities=ENTITIES[:3])
    strict = dataclasses.replace(VISITS, max_rejection_rate=0.0)
    sim_post(
        simulator,
        "/_sim/faults",
        {
            "rules": [
                {
                    "path": "/positions/visits",
                    "kind": "bad_record",
                    "field": "visitors",
                    "value": -1,
                },
            ]
        },
    )
    with pytest.raises(BatchRejected, match=r"positions\.visits .*failed validation"):
        run_entity(strict, positions_feed, warehouse_url, DAY, DAY, "test")
    assert scalar(warehouse_url, "select count(*) from core.fact_position_day") == 0
    assert (
        scalar(warehouse_url, "select count(*) from meta.feed_state where entity = 'visits'") == 0
    )
    status, quarantined = (
        psycopg.connect(warehouse_url)
        .execute("select status, quarantined_rows from meta.load_audit where entity = 'visits'")
        .fetchone()
    )
    assert (status, quarantined) == ("rejected", 1)


def test_a_malformed_body_fails_clearly_and_loads_nothing(simulator, positions_feed, warehouse_url):
    sim_post(
        simulator,
        "/_sim/faults",
        {
            "rules": [
                {"path": "/positions/divisions", "kind": "malformed_body", "times": 1},
            ]
        },
    )
    with pytest.raises(
        FeedError, match=r"positions feed: http://.*/positions/divisions: .*not valid JSON"
    ):
        run_entity(
            ENTITIES[0],
            positions_feed,
            warehouse_url,
            DAY,
            DAY,
            "test",
            fast_client(positions_feed),
        )
    assert scalar(warehouse_url, "select count(*) from core.dim_street") == 0
    assert scalar(warehouse_url, "select status from meta.load_audit") == "failed"


def test_a_client_error_is_not_retried(simulator, positions_feed, warehouse_url):
    sim_post(
        simulator,
        "/_sim/faults",
        {
            "rules": [
                {"path": "/positions/divisions", "kind": "status", "status": 403, "times": 5},
            ]
        },
    )
    client = fast_client(positions_feed)
    with pytest.raises(FeedError, match=r"HTTP 403 .*not retried"):
        run_entity(ENTITIES[0], positions_feed, warehouse_url, DAY, DAY, "test", client)
    assert client.attempts == 1


def test_migrations_are_idempotent_and_keep_data(positions_feed, warehouse_url):
    load_all(positions_feed, warehouse_url, entities=ENTITIES[:1])
    with psycopg.connect(warehouse_url) as conn:
        assert migrate(conn) == []
        assert conn.execute("select count(*) from core.dim_street").fetchone()[0] == 18
        versions = [r[0] for r in conn.execute("select version from meta.schema_migration")]
        assert versions == sorted(versions) and len(versions) >= 4


def test_analysts_read_core_and_meta_but_not_raw_or_quarantine(positions_feed, warehouse_url):
    load_all(positions_feed, warehouse_url, entities=ENTITIES[:1])
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        conn.execute("set role analyst")
        assert conn.execute("select count(*) from core.dim_street").fetchone()[0] == 18
        assert conn.execute("select count(*) from meta.load_audit").fetchone()[0] == 1
        for table in ("raw.payload", "quarantine.rejected_row"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"select * from {table}")  # noqa: S608
        conn.execute("reset role; set role steward")
        assert conn.execute("select count(*) from quarantine.rejected_row").fetchone()[0] == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select * from raw.payload")

"""The volunteer platform end to end: cursors, 429 and 410 over real HTTP, exact ground truth."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest

from civicflow.config import FeedSettings
from civicflow.feeds.positions import COMMUNITIES, POSITIONS, STREETS
from civicflow.feeds.volunteer import ACTIVITIES, SERVICE_HOURS, VOLUNTEER_HELP, VOLUNTEERS
from civicflow.identity import person_key
from civicflow.pipeline import run_entity
from civicflow.simulator.people import residents
from civicflow.simulator.server import DEMO_API_KEY, RunningSimulator

from ..conftest import fast_client
from ..conftest import sim_call as sim

DAY = dt.date(2026, 11, 20)
SECRET = b"a-test-secret-of-32-bytes-length"


@pytest.fixture
def platform():
    with RunningSimulator(port=0, scale=0.001, rate_limit=4) as running:
        yield running


@pytest.fixture
def volunteer_feed(platform) -> FeedSettings:
    return FeedSettings(
        feed="volunteer",
        base_url=f"{platform.url}/volunteer",
        auth=("", DEMO_API_KEY),
        options={"limit": 60},
    )


def load_references(simulator, url: str) -> None:
    feed = FeedSettings(feed="positions", base_url=f"{simulator.url}/positions")
    for entity in (STREETS, COMMUNITIES, POSITIONS):
        run_entity(entity, feed, url, DAY, DAY, "test", fast_client(feed))


def load(entity, feed: FeedSettings, url: str):
    return run_entity(entity, feed, url, DAY, DAY, "test", fast_client(feed), SECRET)


def counts(summary) -> tuple[int, int, int, int]:
    return (
        summary.source_rows,
        summary.accepted_rows,
        summary.quarantined_rows,
        summary.duplicate_rows,
    )


def test_the_platform_loads_exactly_its_ground_truth_then_only_changes(
    platform, volunteer_feed, warehouse_url
):
    load_references(platform, warehouse_url)
    truth = sim(platform, "/_sim/truth?feed=volunteer")
    district = platform.state.district
    # The service-hours listing's cursor expires after two pages: the listing starts again.
    sim(
        platform,
        "/_sim/faults",
        "POST",
        {"rules": [{"path": "/volunteer/v2/service-hours", "status": 410, "after": 2}]},
    )

    summaries = {e.name: load(e, volunteer_feed, warehouse_url) for e in ENTITIES_IN_ORDER}

    v, a, h, b = (truth[k] for k in ("volunteers", "activities", "service-hours", "volunteer_help"))
    assert counts(summaries["volunteers"]) == (
        v["served_rows"],
        v["loaded"],
        v["quarantined"]["invalid_check_digit"],
        0,
    )
    assert counts(summaries["activities"]) == (
        a["served_rows"],
        a["loaded"],
        a["quarantined"]["invalid_uscc"],
        0,
    )
    assert counts(summaries["service_hours"]) == (
        h["served_rows"],
        h["loaded"],
        h["quarantined"]["hours_out_of_range"],
        0,
    )
    assert counts(summaries["volunteer_help"]) == (
        b["served_rows"],
        b["loaded"],
        b["quarantined"]["hours_out_of_range"],
        0,
    )
    assert platform.state.rules[0].times == 0  # the 410 was served, and the listing restarted
    with psycopg.connect(warehouse_url) as conn:
        reasons = dict(
            conn.execute(
                "select entity || ': ' || split_part(reasons[1], ' (', 1), count(*) "
                "from quarantine.rejected_row where feed = 'volunteer' group by 1"
            ).fetchall()
        )
        placed = conn.execute(
            "select count(*) filter (where position_code is not null), count(*) "
            "from core.fact_activity"
        ).fetchone()
        without_key = conn.execute(
            "select count(*) from core.dim_volunteer where volunteer_key is null"
        ).fetchone()[0]
        revoked = conn.execute(
            "select count(*) from core.fact_volunteer_hours where status = 'revoked'"
        ).fetchone()[0]
        unplaced_hours = conn.execute(
            "select count(*) from core.fact_volunteer_hours h join core.fact_activity a "
            "using (activity_id) where h.position_code is distinct from a.position_code "
            "or h.service_date <> (a.start_at at time zone 'Asia/Shanghai')::date"
        ).fetchone()[0]
    expected_reasons = {
        "volunteers: invalid ID number check digit": v["quarantined"]["invalid_check_digit"],
        "activities: invalid credit code check character": a["quarantined"]["invalid_uscc"],
        "service_hours: failed expect_column_values_to_be_between(hours)": h["quarantined"][
            "hours_out_of_range"
        ],
        "volunteer_help: failed expect_column_values_to_be_between(hours)": b["quarantined"][
            "hours_out_of_range"
        ],
    }
    # The day the simulator serves decides which rows are dirty: a reason may count none.
    assert reasons == {reason: n for reason, n in expected_reasons.items() if n}
    assert h["quarantined"]["hours_out_of_range"] >= 1  # the simulator always dirties one
    assert placed == (a["loaded"], a["loaded"])  # by code or by venue address, every one
    assert without_key == v["without_id"]
    assert revoked == h["revoked"]
    assert unplaced_hours == 0
    # The same person has the same key here as in every other feed.
    registered = {person_key(p.id_no, SECRET) for p in residents(district, platform.state.scale)}
    with psycopg.connect(warehouse_url) as conn:
        volunteer_keys = {
            r[0] for r in conn.execute("select volunteer_key from core.dim_volunteer")
        }
        helped = {
            r[0]
            for r in conn.execute(
                "select person_key from core.fact_service where source_feed = 'volunteer'"
            )
        }
    assert helped and helped <= registered  # beneficiaries are registered residents
    assert volunteer_keys & registered  # residents who volunteer are known by the same key

    # Nothing changed upstream: nothing is written.
    again = {e.name: load(e, volunteer_feed, warehouse_url) for e in ENTITIES_IN_ORDER}
    assert all((s.inserted_rows, s.updated_rows) == (0, 0) for s in again.values())

    # Three records are revoked upstream: exactly those rows change.
    revoked_now = sim(platform, "/_sim/volunteer/revoke?count=3", "POST")["revoked"]
    third = load(SERVICE_HOURS, volunteer_feed, warehouse_url)
    assert (third.inserted_rows, third.updated_rows) == (0, 3)
    with psycopg.connect(warehouse_url) as conn:
        changed = {
            r[0]
            for r in conn.execute(
                "select record_id from core.fact_volunteer_hours where load_id = %s",
                (third.load_id,),
            )
        }
    assert changed == set(revoked_now)


ENTITIES_IN_ORDER = (VOLUNTEERS, ACTIVITIES, SERVICE_HOURS, VOLUNTEER_HELP)


def test_help_lands_a_copy_of_the_hours_listed_in_its_run_unless_it_is_behind_them(
    platform, volunteer_feed, warehouse_url
):
    load_references(platform, warehouse_url)

    def load_in(run_id: str, *entities):
        client = fast_client(volunteer_feed)
        return [
            run_entity(e, volunteer_feed, warehouse_url, DAY, DAY, run_id, client, SECRET)
            for e in entities
        ]

    def audit(load_id: str) -> tuple:
        with psycopg.connect(warehouse_url) as conn:
            return conn.execute(
                "select payloads, http_attempts, (select count(distinct meta ->> "
                "'listed_by_load') from raw.payload p where p.load_id = a.load_id) "
                "from meta.load_audit a where load_id = %s",
                (load_id,),
            ).fetchone()

    def consistent() -> bool:  # every help row cancelled exactly when its hours are revoked
        with psycopg.connect(warehouse_url) as conn:
            return conn.execute(
                "select bool_and((s.status = 'cancelled') = (h.status = 'revoked')), count(*) "
                "from core.fact_service s join core.fact_volunteer_hours h "
                "on h.record_id = s.source_record_id where s.source_feed = 'volunteer'"
            ).fetchone()

    truth = sim(platform, "/_sim/truth?feed=volunteer")["volunteer_help"]
    *_, hours, help_ = load_in("run-1", VOLUNTEERS, ACTIVITIES, SERVICE_HOURS, VOLUNTEER_HELP)
    assert counts(help_) == (truth["served_rows"], truth["loaded"],
                             truth["quarantined"]["hours_out_of_range"], 0)  # fmt: skip
    pages = audit(hours.load_id)[0]
    assert pages > 1
    # Not one request: the pages service_hours listed, copied and marked as such.
    assert audit(help_.load_id) == (pages, 0, 1)
    assert consistent() == (True, truth["loaded"])

    # A run in which only the hours load puts help's watermark behind theirs: in the next
    # run the hours are listed from later than help needs, so help lists its own.
    revoked = sim(platform, "/_sim/volunteer/revoke?count=40", "POST")["revoked"]
    with psycopg.connect(warehouse_url) as conn:
        helped = conn.execute(
            "select count(*) from core.fact_service where source_feed = 'volunteer' "
            "and source_record_id = any(%s)",
            (revoked,),
        ).fetchone()[0]
    assert helped > 0  # some of the revoked hours were help given to a resident
    load_in("run-2", SERVICE_HOURS)
    assert consistent()[0] is False  # help has not seen those revocations yet
    hours, help_ = load_in("run-3", SERVICE_HOURS, VOLUNTEER_HELP)
    payloads, attempts, copied = audit(help_.load_id)
    assert attempts >= payloads > 0 and copied == 0
    assert consistent() == (True, truth["loaded"])

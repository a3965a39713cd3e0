"""The people marts against the simulator's ground truth: every feed over HTTP, marts refreshed.

The expected marts are computed in Python (``tests/truth_marts.py``) from what the
simulator says a load should make of its feeds, never by querying the warehouse the
way the marts do. The register's snapshots run from 28 November to 4 December, so
November's coverage must take each person's version valid on 30 November. Then the
departments correct themselves (ledgers republished, records cancelled, hours revoked),
the changes are loaded and the marts refreshed, and the comparison is made again.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from decimal import Decimal
from fractions import Fraction

import psycopg
import pytest

from civicflow.config import FeedSettings
from civicflow.feeds.civil_affairs import REGISTER
from civicflow.feeds.elderly_care import LEDGERS
from civicflow.feeds.health import SERVICE_RECORDS
from civicflow.feeds.positions import COMMUNITIES, POSITIONS, STREETS
from civicflow.feeds.volunteer import ACTIVITIES, SERVICE_HOURS, VOLUNTEER_HELP, VOLUNTEERS
from civicflow.identity import person_key
from civicflow.marts import refresh
from civicflow.pipeline import open_warehouse, run_entity
from civicflow.simulator.server import (
    DEMO_API_KEY,
    DEMO_CLIENT,
    DEMO_LEDGER_TOKEN,
    DEMO_REGISTER_LOGIN,
    RunningSimulator,
)

from .. import truth_marts as truth
from ..conftest import fast_client
from ..conftest import sim_call as sim

# Register snapshots 2025-11-28 .. 2025-12-04, across a month end. A past date, so that
# corrections made now (republished ledgers, cancellations) are newer than what was loaded.
AS_OF = dt.date(2025, 12, 5)
SNAPSHOTS = [AS_OF - dt.timedelta(days=n) for n in range(7, 0, -1)]
SCALE = 0.004  # 1,200 registered people, 8,000 services; the smallest with help in November
SECRET = b"a-test-secret-of-32-bytes-length"
NOVEMBER, DECEMBER = dt.date(2025, 11, 1), dt.date(2025, 12, 1)
# Ledgers of October and November only (a run on 4 December looks back two months): the
# months with registered people, and enough to keep the workbooks cheap to build and read.
LEDGER_MONTHS = "2025-10,2025-11"


@pytest.fixture
def district_sim():
    with RunningSimulator(port=0, scale=SCALE, as_of=AS_OF) as running:
        yield running


def key(id_no: str) -> str:
    return person_key(id_no, SECRET)


def load_every_feed(simulator: RunningSimulator, url: str, first: bool = True) -> None:
    """Every feed the people marts read, as the DAGs would load them, then the marts.

    After the ``first`` time, only the feeds of services again: what changed since.
    """
    day = SNAPSHOTS[-1]

    def run(entity, feed: FeedSettings, until: dt.date = day) -> None:
        summary = run_entity(entity, feed, url, until, until, "test", fast_client(feed), SECRET)
        assert summary.inserted_rows + summary.updated_rows > 0, f"{entity.name}: no change"

    def settings(feed: str, auth=None, **options) -> FeedSettings:
        return FeedSettings(feed, f"{simulator.url}/{feed}", auth=auth, options=options)

    if first:
        for entity in (STREETS, COMMUNITIES, POSITIONS):
            run(entity, settings("positions"))
    run(SERVICE_RECORDS, settings("health", DEMO_CLIENT, page_size=1000))
    run(LEDGERS, settings("elderly_care", ("", DEMO_LEDGER_TOKEN), lookback_months=2))
    volunteer = settings("volunteer", ("", DEMO_API_KEY), limit=1000)
    for entity in (VOLUNTEERS, ACTIVITIES) if first else ():
        run(entity, volunteer)
    for entity in (SERVICE_HOURS, VOLUNTEER_HELP):
        run(entity, volunteer)
    if first:
        register = settings("civil_affairs", DEMO_REGISTER_LOGIN)
        run(REGISTER, register, SNAPSHOTS[0])  # a first run takes only the newest snapshot
        run(REGISTER, register, SNAPSHOTS[-1])  # the next catches up the other six, in order
    with open_warehouse(url) as conn:
        refresh(conn)


def query(url: str, text: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(text).fetchall()


def rate(value: Decimal | Fraction | None) -> Decimal | None:
    """A coverage rate to 12 places, whether numeric from PostgreSQL or an exact fraction."""
    if value is None:
        return None
    if isinstance(value, Fraction):
        value = Decimal(value.numerator) / Decimal(value.denominator)
    return value.quantize(Decimal("1e-12"))


def compare_with_truth(simulator: RunningSimulator, url: str, history: dict) -> tuple:
    """Assert core.fact_service and the people marts equal the truth; return what was compared.

    Returns (services in core, expected coverage rows, expected outreach list).
    """
    # The services: core.fact_service holds exactly what the feeds' truth says, row for row.
    served = sim(simulator, f"/_sim/truth?feed=services&months={LEDGER_MONTHS}")["services"]
    expected_services = Counter(
        (key(s["id_no"]), dt.date.fromisoformat(s["service_date"]), s["service_area"],
         s["status"], s["street_code"], s["community_code"])
        for s in served
    )  # fmt: skip
    in_core = Counter(
        query(
            url,
            "select person_key, service_date, service_area, status, street_code, community_code "
            "from core.fact_service",
        )
    )
    assert in_core == expected_services, (
        f"only in core: {list((in_core - expected_services).elements())[:5]}; "
        f"missing: {list((expected_services - in_core).elements())[:5]}"
    )
    services = truth.services_from_truth({"services": served}, key)

    # elderly_coverage, row for row: every month with services, every community.
    communities = {c.code: s.code for s in simulator.state.district.streets for c in s.communities}
    expected = {
        k: (c.street_code, c.elderly_registered, c.elderly_served_any, *c.served,
            rate(c.coverage_rate))
        for k, c in truth.elderly_coverage(history, services, communities).items()
    }  # fmt: skip
    mart = {
        (month, community): (street, *counts, rate(coverage))
        for month, street, community, *counts, coverage in query(
            url,
            "select month, street_code, community_code, elderly_registered, elderly_served_any, "
            "served_meals, served_daycare, served_health, served_volunteer, coverage_rate "
            "from marts.elderly_coverage",
        )
    }
    assert mart.keys() == expected.keys()
    wrong = {k: (mart[k], expected[k]) for k in sorted(expected) if mart[k] != expected[k]}
    assert not wrong, f"{len(wrong)} rows differ (mart, expected), e.g. {list(wrong.items())[:3]}"

    # unreached_vulnerable, as a set, days_without_service included.
    expected_unreached = truth.unreached_vulnerable(history, services)
    listed = {
        (k, c, tuple(cats), last, days)
        for k, c, cats, last, days in query(
            url,
            "select person_key, community_code, categories, last_service_date, "
            "days_without_service from marts.unreached_vulnerable",
        )
    }
    assert listed == expected_unreached, (
        f"only in the mart: {sorted(listed - expected_unreached)[:3]}; "
        f"missing: {sorted(expected_unreached - listed, key=str)[:3]}"
    )
    return in_core, expected, expected_unreached


def test_people_marts_equal_their_computation_from_the_ground_truth(district_sim, warehouse_url):
    started = time.perf_counter()
    load_every_feed(district_sim, warehouse_url)
    loaded_in = time.perf_counter() - started

    # The person history the marts read is the register's, snapshot by snapshot.
    snapshots = [sim(district_sim, f"/_sim/truth?feed=civil_affairs&date={d}") for d in SNAPSHOTS]
    history = truth.person_history(snapshots, key)
    in_history = query(
        warehouse_url,
        "select person_key, community_code, categories, registry_status, gender, birth_year, "
        "valid_from, valid_to from core.dim_person",
    )
    assert {(k, c, tuple(cats), *rest) for k, c, cats, *rest in in_history} == {
        (k, *v.attributes(), v.valid_from, v.valid_to) for k, vs in history.items() for v in vs
    }

    in_core, coverage, unreached = compare_with_truth(district_sim, warehouse_url, history)

    # Not vacuous: every kind of service, both statuses; November and December have
    # registered elderly, partly reached, by every kind of service.
    by_area = Counter((area, status) for _, _, area, status, *_ in in_core.elements())
    assert all(by_area[area, "completed"] > 0 for area in truth.AREAS)
    assert by_area["health", "cancelled"] > 0 and by_area["volunteer_help", "cancelled"] > 0
    november = {c: v for (month, c), v in coverage.items() if month == NOVEMBER}
    december = {c: v for (month, c), v in coverage.items() if month == DECEMBER}
    assert len(coverage) >= 12 * len(november) > 2000
    assert {month for (month, _), v in coverage.items() if v[1]} == {NOVEMBER, DECEMBER}
    assert sum(1 for v in november.values() if v[-1] is not None and 0 < v[-1] < 1) >= 10
    assert sum(1 for v in november.values() if v[-1] == 1) >= 1
    assert all(sum(v[3 + i] for v in november.values()) > 0 for i in range(len(truth.AREAS)))
    # The month end counts: people whose version changed in December are counted in November
    # as they were on 30 November (December's count takes the current versions).
    assert any(v.valid_to and v.valid_to > SNAPSHOTS[2] for vs in history.values() for v in vs)
    assert any(v[1] != december[c][1] for c, v in november.items())
    # The list holds people last served more than 90 days ago, and people with no service
    # in what was loaded (days null).
    assert len(unreached) >= 5
    assert all(days is None or days > truth.UNREACHED_AFTER_DAYS for *_, days in unreached)
    assert {days is None for *_, days in unreached} == {True, False}

    # Corrections upstream: November's ledgers republished (their rows replaced), health
    # records cancelled, volunteer hours revoked. The next loads and refresh follow exactly.
    streets = len(district_sim.state.district.streets)
    republished = sim(district_sim, f"/_sim/elderly_care/republish?count={streets}", "POST")
    assert all(f.startswith(f"{NOVEMBER:%Y-%m}_") for f in republished["republished"])
    sim(district_sim, "/_sim/health/cancel?count=40", "POST")
    sim(district_sim, "/_sim/volunteer/revoke?count=40", "POST")
    load_every_feed(district_sim, warehouse_url, first=False)
    in_core_after, coverage_after, unreached_after = compare_with_truth(
        district_sim, warehouse_url, history
    )
    assert in_core_after != in_core
    assert any(coverage_after[k] != v for k, v in coverage.items() if k[0] == NOVEMBER)
    print(
        f"loaded in {loaded_in:.1f}s, compared in {time.perf_counter() - started:.1f}s: "
        f"{sum(in_core.values())} services, {len(in_history)} person versions, "
        f"{len(coverage)} coverage rows, {len(unreached)} and {len(unreached_after)} unreached"
    )

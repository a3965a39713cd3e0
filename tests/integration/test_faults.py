"""The fault matrix: every fault the feeds' interfaces warn of, over real HTTP, end to end.

Each case loads a baseline into a fresh warehouse, changes something upstream (so a load
that committed would change the warehouse), injects one fault in the simulator and runs
``run_entity`` again. A transient fault is retried (or the listing restarted) and the load
publishes exactly the upstream change; a permanent one, or a transient one that outlasts
the retries, fails with an error naming the feed, the URL or file and the reason, the
batch's audit row says ``failed`` with that error, and every ``core`` table and the feed
state (the watermarks) are exactly as before: no partial commit.

One simulator serves the whole module (faults are cleared between cases); its health
tokens expire after two calls, so every health load renews its token mid-listing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
import time
from typing import Any, ClassVar
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql

from civicflow.config import FeedSettings
from civicflow.feeds.civil_affairs import REGISTER
from civicflow.feeds.elderly_care import LEDGERS
from civicflow.feeds.health import SERVICE_RECORDS
from civicflow.feeds.positions import COMMUNITIES, POSITIONS, STREETS, VISITS
from civicflow.feeds.volunteer import ACTIVITIES, SERVICE_HOURS, VOLUNTEERS
from civicflow.httpclient import FeedClient, FeedError
from civicflow.pipeline import BatchError, BatchSummary, run_entity
from civicflow.simulator.server import (
    DEMO_API_KEY,
    DEMO_CLIENT,
    DEMO_LEDGER_TOKEN,
    DEMO_REGISTER_LOGIN,
    RunningSimulator,
)
from civicflow.simulator.world import visits_document

from ..conftest import fast_client
from ..conftest import sim_call as sim

AS_OF = dt.date(2026, 11, 27)  # the simulator's today: register snapshots 11-20 .. 11-26
DAY = dt.date(2026, 11, 20)
CORRECTED_DAY = DAY - dt.timedelta(days=1)  # inside the visits' three-day look-back
SECRET = b"a-test-secret-of-32-bytes-length"
URL = r"http://127\.0\.0\.1:\d+"


@pytest.fixture(scope="module")
def simulator():
    # No natural rate limit: the 429s of this module are the ones its cases inject.
    with RunningSimulator(
        port=0, scale=0.001, as_of=AS_OF, token_uses=2, rate_limit=10_000
    ) as running:
        yield running


@pytest.fixture
def sim_clean(simulator):
    sim(simulator, "/_sim/faults", "DELETE")
    yield simulator
    sim(simulator, "/_sim/faults", "DELETE")
    sim(simulator, "/_sim/civil_affairs/corrupt", "DELETE")


# --- the warehouse's state ----------------------------------------------------------------------


def fingerprint(url: str) -> dict[str, tuple[int, str]]:
    """Row count and checksum of every table of ``core``, and of ``meta.feed_state``."""
    with psycopg.connect(url) as conn:
        tables = [
            ("core", name)
            for (name,) in conn.execute(
                "select table_name from information_schema.tables "
                "where table_schema = 'core' and table_type = 'BASE TABLE' order by 1"
            )
        ]
        assert len(tables) >= 5
        out = {}
        for schema, table in [*tables, ("meta", "feed_state")]:
            out[f"{schema}.{table}"] = conn.execute(
                sql.SQL(
                    "select count(*), md5(coalesce(string_agg(t::text, ',' order by t::text), '')) "
                    "from {} t"
                ).format(sql.Identifier(schema, table))
            ).fetchone()
    return out


def last_audit(url: str, feed: str) -> dict[str, Any]:
    with psycopg.connect(url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(
            "select load_id::text, entity, status, error, payloads, http_attempts "
            "from meta.load_audit where feed = %s order by started_at desc limit 1",
            (feed,),
        ).fetchone()


def scalar(url: str, query: str, params: Any = ()) -> Any:
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchone()[0]


# --- the feeds: a baseline, a change upstream, a load, and what that load must publish ---------


def settings(simulator: RunningSimulator, feed: str, **options: Any) -> FeedSettings:
    auth = {
        "health": DEMO_CLIENT,
        "volunteer": ("", DEMO_API_KEY),
        "civil_affairs": DEMO_REGISTER_LOGIN,
        "elderly_care": ("", DEMO_LEDGER_TOKEN),
    }.get(feed)
    return FeedSettings(feed, f"{simulator.url}/{feed}", auth=auth, options=options)


def load(
    simulator: RunningSimulator,
    entity,
    url: str,
    day: dt.date = DAY,
    client: FeedClient | None = None,
    **options: Any,
) -> BatchSummary:
    feed = settings(simulator, entity.feed, **options)
    return run_entity(entity, feed, url, day, day, "test", client or fast_client(feed), SECRET)


class Scenario:
    """One feed's part in the matrix (class attributes; the methods are its steps)."""

    entity: Any
    options: ClassVar[dict[str, Any]] = {}  # the faulted load's connection extra
    baseline_day: dt.date = DAY  # the baseline load's day
    day: dt.date = DAY  # the faulted load's day
    references: tuple = (STREETS, COMMUNITIES)  # loaded first, for the baseline to resolve

    def baseline(self, simulator: RunningSimulator, url: str) -> None:
        for entity in self.references:
            load(simulator, entity, url, DAY)
        load(simulator, self.entity, url, self.baseline_day)

    def change(self, simulator: RunningSimulator) -> Any:
        """Change something upstream; returns what the next load should make of it."""
        return None

    def check(self, url: str, summary: BatchSummary, expected: Any) -> None:
        """The faulted load published exactly the change."""
        raise NotImplementedError


class Positions(Scenario):
    entity = VISITS
    references = (STREETS, COMMUNITIES, POSITIONS)

    def change(self, simulator):
        version = sim(simulator, f"/_sim/correct?date={CORRECTED_DAY}", "POST")["version"]
        district = simulator.state.district
        before = visits_document(district, CORRECTED_DAY, version - 1)
        after = visits_document(district, CORRECTED_DAY, version)
        changed = sum(1 for old, new in zip(before, after, strict=True) if old != new)
        assert changed > 0
        rows = {
            (v["position_code"], v["visitors"], v["activities_held"], v["participants"])
            for v in after
        }
        return changed, rows

    def check(self, url, summary, expected):
        changed, rows = expected
        assert (summary.inserted_rows, summary.updated_rows) == (0, changed)
        with psycopg.connect(url) as conn:
            loaded = conn.execute(
                "select position_code, visitors, activities_held, participants "
                "from core.fact_position_day where visit_date = %s",
                (CORRECTED_DAY,),
            ).fetchall()
        assert set(loaded) == rows and len(loaded) == len(rows)


def ids_of(url: str, query: str, load_id: str) -> set[str]:
    """The ids a query finds for one load."""
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute(query, (load_id,))}


class Health(Scenario):
    entity = SERVICE_RECORDS
    options: ClassVar[dict[str, Any]] = {
        "page_size": 2
    }  # the changed records and the boundary's: several pages

    def change(self, simulator):
        return set(sim(simulator, "/_sim/health/cancel?count=5", "POST")["cancelled"])

    def check(self, url, summary, expected):
        assert (summary.inserted_rows, summary.updated_rows) == (0, len(expected))
        assert expected == ids_of(
            url,
            "select source_record_id from core.fact_service where status = 'cancelled' "
            "and load_id = %s",
            summary.load_id,
        )


class Volunteer(Scenario):
    entity = SERVICE_HOURS
    references = (STREETS, COMMUNITIES, POSITIONS)
    options: ClassVar[dict[str, Any]] = {
        "limit": 2
    }  # several pages, so a cursor can expire mid-listing

    def baseline(self, simulator, url):
        for entity in (*self.references, VOLUNTEERS, ACTIVITIES):
            load(simulator, entity, url, DAY)
        load(simulator, self.entity, url, DAY)

    def change(self, simulator):
        return set(sim(simulator, "/_sim/volunteer/revoke?count=3", "POST")["revoked"])

    def check(self, url, summary, expected):
        assert (summary.inserted_rows, summary.updated_rows) == (0, len(expected))
        assert expected == ids_of(
            url,
            "select record_id from core.fact_volunteer_hours where status = 'revoked' "
            "and load_id = %s",
            summary.load_id,
        )


class CivilAffairs(Scenario):
    entity = REGISTER
    baseline_day = AS_OF - dt.timedelta(days=3)
    day = AS_OF - dt.timedelta(days=2)  # the faulted load would apply the next snapshot


class ElderlyCare(Scenario):
    entity = LEDGERS
    references = (STREETS, COMMUNITIES, POSITIONS)
    baseline_day = day = dt.date(2026, 10, 15)
    options: ClassVar[dict[str, Any]] = {"lookback_months": 0}  # the ledgers of October only

    def baseline(self, simulator, url):
        for entity in self.references:
            load(simulator, entity, url, DAY)
        load(simulator, self.entity, url, self.baseline_day, **self.options)

    def change(self, simulator):
        # A corrected version of one October ledger, published now: the next load's one file.
        (file,) = sim(simulator, "/_sim/elderly_care/republish?count=1", "POST")["republished"]
        return file


# --- the cases ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Case:
    scenario: type[Scenario]
    rules: tuple[dict[str, Any], ...] = ()
    steer: str | None = None  # a steering call (POST) instead of fault rules
    client: dict[str, Any] = dataclasses.field(default_factory=dict)  # FeedClient overrides
    retried: int = 0  # a transient fault: the requests it made the client repeat
    exact: bool = True  # False where a busy machine may add time-outs of its own
    error: str | None = None  # a permanent fault: the error, a regex ({file} is filled in)


VISITS_PATH = "/positions/visits"
RECORDS_PATH = "/health/api/v1/service-records"
HOURS_PATH = "/volunteer/v2/service-hours"

CASES = {
    "429 storm": Case(
        Volunteer,
        ({"path": HOURS_PATH, "status": 429, "retry_after": "1", "times": 4, "after": 1},),
        retried=4,
    ),
    "5xx burst": Case(
        Positions,
        tuple(
            {"path": VISITS_PATH, "status": status, "times": 1, "after": 1}
            for status in (500, 502, 503, 504)
        ),
        retried=4,
    ),
    "slower than the time-out": Case(
        Health,
        ({"path": RECORDS_PATH, "kind": "slow", "delay_s": 2.0, "times": 2, "after": 1},),
        client={"read_timeout_s": 0.5},
        retried=2,
        exact=False,
    ),
    "reset mid-body": Case(
        Positions,
        ({"path": VISITS_PATH, "kind": "reset_mid_body", "times": 2, "after": 1},),
        retried=2,
    ),
    # The simulator's tokens last two calls; the listing is longer (see the test's checks).
    "token expiry": Case(Health),
    # Page 2's cursor expires, then, after the restart, page 2's again: two restarts, each
    # re-reading page 1 (4 requests repeated).
    "cursor expiry (410)": Case(
        Volunteer,
        (
            {"path": HOURS_PATH, "status": 410, "times": 1, "after": 1},
            {"path": HOURS_PATH, "status": 410, "times": 1, "after": 2},
        ),
        retried=4,
    ),
    "cursor expiry outlasting the restarts": Case(
        Volunteer,
        ({"path": HOURS_PATH, "status": 410, "times": 100, "after": 1},),
        error=rf"^volunteer feed: {URL}/volunteer/v2/service-hours\S*: the cursor expired "
        r"\(410 Gone\) in each of 4 listings from \S+; the listing is slower than the cursor "
        r"lasts$",
    ),
    "truncated JSON": Case(
        Health,
        ({"path": RECORDS_PATH, "kind": "malformed_body", "times": 1, "after": 1},),
        error=rf"^health feed: {URL}/health/api/v1/service-records\?\S*page=2\S*: "
        # and nothing of the body: it is records, ID numbers included, and goes to the audit
        r"HTTP 200 body is not valid JSON \(.*\); content-type 'application/json'$",
    ),
    "HTML page with 200": Case(
        Positions,
        ({"path": VISITS_PATH, "kind": "html", "times": 1, "after": 1},),
        error=rf"^positions feed: {URL}/positions/visits\?date=2026-11-19: HTTP 200 body is "
        r"not valid JSON \(.*\); content-type 'text/html'; body starts '<html>.*502 Bad Gateway",
    ),
    "sha256 mismatch": Case(
        CivilAffairs,
        steer=f"/_sim/civil_affairs/corrupt?date={CivilAffairs.day}",
        error=rf"^civil_affairs feed: {URL}/civil_affairs/exports/residents_20261125\.csv: "
        r"sha256 [0-9a-f]{64} does not match the index's [0-9a-f]{64}: a corrupt export is "
        r"never loaded$",
    ),
    "xlsx that is no workbook": Case(
        ElderlyCare,
        ({"path": "/elderly_care/ledgers/", "kind": "body", "value": "PK\x03\x04 no zip"},),
        error=r"^elderly_care\.ledgers \(load [0-9a-f-]{36}\): payload of "
        rf"{URL}/elderly_care/ledgers/{{quoted}} cannot be read: {{file}}: "
        r"not an Excel workbook \(\w+\)$",
    ),
    "5xx outlasting the retries": Case(
        Positions,
        ({"path": VISITS_PATH, "status": 503, "times": 100, "after": 1},),
        client={"max_attempts": 3},
        error=rf"^positions feed: {URL}/positions/visits\?date=2026-11-19: gave up after 3 "
        r"attempts; last: HTTP 503 Service Unavailable$",
    ),
    "reset mid-body outlasting the retries": Case(
        Positions,
        ({"path": VISITS_PATH, "kind": "reset_mid_body", "times": 100, "after": 1},),
        client={"max_attempts": 3},
        error=rf"^positions feed: {URL}/positions/visits\?date=2026-11-19: gave up after 3 "
        r"attempts; last: ChunkedEncodingError: .*Connection reset by peer",
    ),
}


def client_for_case(simulator, scenario: Scenario, case: Case) -> tuple[FeedClient, list[float]]:
    """A fast client for the case; returns it and the waits it asked for."""
    feed = settings(simulator, scenario.entity.feed, **scenario.options)
    policy = {k: v for k, v in case.client.items() if k == "max_attempts"}
    client = fast_client(feed, **policy)
    if "read_timeout_s" in case.client:
        client.read_timeout_s = case.client["read_timeout_s"]
    waits: list[float] = []

    def sleep(seconds: float) -> None:  # Retry-After is recorded, not waited out in full
        waits.append(seconds)
        time.sleep(min(seconds, 0.05))

    client.sleep = sleep
    return client, waits


def requests_to(simulator, prefix: str) -> int:
    counts = sim(simulator, "/_sim/stats")["requests"]
    return sum(n for path, n in counts.items() if path.startswith(prefix))


@pytest.mark.parametrize("name", list(CASES))
def test_fault(name: str, sim_clean: RunningSimulator, warehouse_url: str, caplog) -> None:
    case, simulator = CASES[name], sim_clean
    scenario = case.scenario()
    feed = scenario.entity.feed
    scenario.baseline(simulator, warehouse_url)
    expected = scenario.change(simulator)
    before = fingerprint(warehouse_url)
    tokens_before = sim(simulator, "/_sim/stats")["tokens_issued"]
    requests_before = requests_to(simulator, f"/{feed}/")

    if case.rules:
        sim(simulator, "/_sim/faults", "POST", {"rules": list(case.rules)})
    if case.steer:
        sim(simulator, case.steer, "POST")
    client, waits = client_for_case(simulator, scenario, case)

    def run() -> BatchSummary:
        return load(
            simulator, scenario.entity, warehouse_url, scenario.day, client, **scenario.options
        )

    if case.error is None:
        with caplog.at_level(logging.INFO):
            summary = run()
        assert summary.status == "succeeded"
        scenario.check(warehouse_url, summary, expected)
        assert fingerprint(warehouse_url) != before
        audit = last_audit(warehouse_url, feed)
        assert (audit["status"], audit["error"]) == ("succeeded", None)
        sent = requests_to(simulator, f"/{feed}/") - requests_before
        assert audit["http_attempts"] == client.attempts == sent
        # Every fault rule was used up, and requests were repeated because of them.
        assert all(rule.times == 0 for rule in simulator.state.rules)
        renewed = sim(simulator, "/_sim/stats")["tokens_issued"] - tokens_before
        refused = sum("token refused (401)" in r.getMessage() for r in caplog.records)
        # Requests repeated because of the fault: beyond one a payload and the token traffic.
        repeated = client.attempts - audit["payloads"] - renewed - refused
        assert repeated == case.retried if case.exact else repeated >= case.retried
        if name == "429 storm":
            assert waits == [1.0] * 4  # Retry-After honoured
        if name == "token expiry":  # one token, then one more each time the API refused one
            assert renewed == refused + 1 >= 2
        if name == "cursor expiry (410)":
            restarts = [r for r in caplog.records if "cursor expired" in r.getMessage()]
            assert len(restarts) == 2
            assert summary.duplicate_rows == 0  # the pages read before a restart were dropped
        return

    with pytest.raises((FeedError, BatchError)) as caught:
        run()
    message = str(caught.value)
    pattern = case.error
    if isinstance(expected, str):  # the ledger file the load was to read
        pattern = pattern.replace("{file}", re.escape(expected)).replace(
            "{quoted}", re.escape(quote(expected))
        )
    assert re.search(pattern, message), message
    audit = last_audit(warehouse_url, feed)
    assert audit["status"] == "failed"
    recorded = caught.value.reason if isinstance(caught.value, BatchError) else message
    assert audit["error"] == recorded
    # Nothing of the batch was published: core and the watermarks are as they were.
    assert fingerprint(warehouse_url) == before
    assert (
        scalar(
            warehouse_url,
            "select count(*) from quarantine.rejected_row where load_id = %s",
            (audit["load_id"],),
        )
        == 0
    )

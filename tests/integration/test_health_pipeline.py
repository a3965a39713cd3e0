"""The health feed end to end: OAuth over real HTTP, incremental loads, exact ground truth."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest

from civicflow.config import FeedSettings
from civicflow.feeds.health import SERVICE_RECORDS
from civicflow.feeds.positions import COMMUNITIES, STREETS
from civicflow.identity import person_key
from civicflow.pipeline import BatchError, run_entity
from civicflow.simulator.people import residents
from civicflow.simulator.server import DEMO_CLIENT, RunningSimulator

from ..conftest import fast_client
from ..conftest import sim_call as sim

DAY = dt.date(2026, 11, 20)
SECRET = b"a-test-secret-of-32-bytes-length"


@pytest.fixture
def health_sim():
    # Tokens expire after two calls: every load renews its token in the middle of paging.
    with RunningSimulator(port=0, scale=0.001, token_uses=2) as running:
        yield running


@pytest.fixture
def health_feed(health_sim) -> FeedSettings:
    return FeedSettings(
        feed="health",
        base_url=f"{health_sim.url}/health",
        auth=DEMO_CLIENT,
        options={"page_size": 200},
    )


def load_divisions(simulator, url: str) -> None:
    feed = FeedSettings(feed="positions", base_url=f"{simulator.url}/positions")
    for entity in (STREETS, COMMUNITIES):
        run_entity(entity, feed, url, DAY, DAY, "test", fast_client(feed))


def load_health(feed: FeedSettings, url: str):
    return run_entity(SERVICE_RECORDS, feed, url, DAY, DAY, "test", fast_client(feed), SECRET)


def test_health_loads_exactly_the_ground_truth_then_only_changes(
    health_sim, health_feed, warehouse_url
):
    load_divisions(health_sim, warehouse_url)
    truth = sim(health_sim, "/_sim/truth?feed=health")
    people = residents(health_sim.state.district, health_sim.state.scale)
    assert truth["quarantined"]["invalid_check_digit"] > 0 and truth["duplicates"] > 0

    first = load_health(health_feed, warehouse_url)

    assert (first.source_rows, first.accepted_rows, first.duplicate_rows) == (
        truth["served_rows"],
        truth["loaded"],
        truth["duplicates"],
    )
    assert first.quarantined_rows == sum(truth["quarantined"].values())
    assert first.inserted_rows == truth["loaded"]
    with psycopg.connect(warehouse_url) as conn:
        reasons = dict(
            conn.execute(
                "select split_part(reasons[1], ' ''', 1), count(*) from quarantine.rejected_row "
                "where feed = 'health' group by 1"
            ).fetchall()
        )
        status = dict(
            conn.execute(
                "select status, count(*) from core.fact_service group by status"
            ).fetchall()
        )
        in_quarantine = conn.execute(
            "select record from quarantine.rejected_row where feed = 'health' limit 1"
        ).fetchone()[0]
        core_text = conn.execute(
            "select string_agg(t::text, '|') from core.fact_service t"
        ).fetchone()[0]
    assert reasons == {
        "invalid ID number check digit": truth["quarantined"]["invalid_check_digit"],
        "unknown community": truth["quarantined"]["unknown_community"],
    }
    assert status == {
        "completed": truth["loaded"] - truth["cancelled"],
        "cancelled": truth["cancelled"],
    }
    assert "details" not in in_quarantine  # clinical details never leave raw
    # Every key is the HMAC of a registered person's canonical ID, whatever the spelling.
    with psycopg.connect(warehouse_url) as conn:
        keys = {r[0] for r in conn.execute("select person_key from core.fact_service")}
    assert keys <= {person_key(p.id_no, SECRET) for p in people}
    assert not any(p.id_no in core_text or p.name in core_text for p in people)
    stats = sim(health_sim, "/_sim/stats")
    assert stats["tokens_issued"] >= 3  # renewed in the middle of paging

    # No upstream change: the boundary records are read again and nothing is written.
    second = load_health(health_feed, warehouse_url)
    assert (second.inserted_rows, second.updated_rows) == (0, 0)

    # Five records are cancelled upstream: exactly those five rows change.
    cancelled = sim(health_sim, "/_sim/health/cancel?count=5", "POST")["cancelled"]
    third = load_health(health_feed, warehouse_url)
    assert (third.inserted_rows, third.updated_rows) == (0, 5)
    with psycopg.connect(warehouse_url) as conn:
        now_cancelled = {
            r[0]
            for r in conn.execute(
                "select source_record_id from core.fact_service where status = 'cancelled' "
                "and load_id = %s",
                (third.load_id,),
            ).fetchall()
        }
        watermark = conn.execute(
            "select watermark from meta.feed_state where feed = 'health'"
        ).fetchone()[0]
    assert now_cancelled == set(cancelled)
    assert watermark is not None and watermark > first.watermark


def test_a_wrong_client_secret_fails_without_loading(health_sim, health_feed, warehouse_url):
    wrong = FeedSettings(feed="health", base_url=health_feed.base_url, auth=("civicflow", "nope"))
    with pytest.raises(Exception, match="401") as err:
        load_health(wrong, warehouse_url)
    assert not isinstance(err.value, BatchError)
    with psycopg.connect(warehouse_url) as conn:
        assert conn.execute("select count(*) from core.fact_service").fetchone()[0] == 0
        assert (
            conn.execute("select status from meta.load_audit where feed = 'health'").fetchone()[0]
            == "failed"
        )

"""The elderly-care ledgers end to end: Excel workbooks over real HTTP, versions replacing rows."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import psycopg
import pytest

from civicflow.config import FeedSettings
from civicflow.feeds.elderly_care import LEDGERS
from civicflow.feeds.positions import COMMUNITIES, POSITIONS, STREETS
from civicflow.identity import person_key
from civicflow.pipeline import run_entity
from civicflow.simulator.people import residents
from civicflow.simulator.server import DEMO_LEDGER_TOKEN, RunningSimulator

from ..conftest import fast_client
from ..conftest import sim_call as sim

AS_OF = dt.date(2026, 11, 27)
DAY = AS_OF - dt.timedelta(days=1)
MONTHS = "2026-09,2026-10,2026-11"  # lookback_months=2 from November
SECRET = b"a-test-secret-of-32-bytes-length"


@pytest.fixture
def ledger_sim():
    with RunningSimulator(port=0, scale=0.002, as_of=AS_OF) as running:
        yield running


def load(simulator, url: str):
    feed = FeedSettings(
        feed="elderly_care",
        base_url=f"{simulator.url}/elderly_care",
        auth=("", DEMO_LEDGER_TOKEN),
        options={"lookback_months": 2},
    )
    return run_entity(LEDGERS, feed, url, DAY, DAY, "test", fast_client(feed), SECRET)


def load_references(simulator, url: str) -> None:
    feed = FeedSettings(feed="positions", base_url=f"{simulator.url}/positions")
    for entity in (STREETS, COMMUNITIES, POSITIONS):
        run_entity(entity, feed, url, DAY, DAY, "test", fast_client(feed))


def warehouse_totals(url: str) -> dict:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "select service_area, count(*), sum(quantity), sum(amount_yuan), "
            "count(position_code) from core.fact_service where source_feed = 'elderly_care' "
            "group by service_area"
        ).fetchall()
    return {area: (n, quantity, amount, placed) for area, n, quantity, amount, placed in rows}


def test_ledgers_load_exactly_their_ground_truth_and_a_new_version_replaces_the_old(
    ledger_sim, warehouse_url
):
    load_references(ledger_sim, warehouse_url)
    truth = sim(ledger_sim, f"/_sim/truth?feed=elderly_care&months={MONTHS}")
    meals, day_care = truth["meals"], truth["day_care"]
    assert truth["superseded_files"] and meals["text_dates"] and day_care["id_spellings"]
    assert meals["quarantined"]["invalid_check_digit"] > 0

    first = load(ledger_sim, warehouse_url)

    assert (first.source_rows, first.accepted_rows, first.duplicate_rows) == (
        meals["rows"] + day_care["rows"],
        meals["loaded"] + day_care["loaded"],
        0,
    )
    assert first.quarantined_rows == sum(meals["quarantined"].values()) + sum(
        day_care["quarantined"].values()
    )
    assert (first.inserted_rows, first.updated_rows) == (first.accepted_rows, 0)
    totals = warehouse_totals(warehouse_url)
    assert totals["meals"][:3] == (meals["loaded"], meals["loaded"], Decimal(truth["amount_yuan"]))
    assert totals["day_care"][:2] == (day_care["loaded"], Decimal(truth["hours"]))
    assert totals["meals"][3] > 0  # canteens that are registered positions are placed there
    with psycopg.connect(warehouse_url) as conn:
        reasons = dict(
            conn.execute(
                "select reasons[1], count(*) from quarantine.rejected_row "
                "where feed = 'elderly_care' group by 1"
            ).fetchall()
        )
        versions = dict(
            conn.execute(
                "select source_batch, max(source_version) from core.fact_service "
                "where source_feed = 'elderly_care' group by 1"
            ).fetchall()
        )
        served = {
            k
            for (k,) in conn.execute(
                "select distinct person_key from core.fact_service "
                "where source_feed = 'elderly_care'"
            )
        }
    assert reasons == {"invalid ID number check digit": first.quarantined_rows}
    assert len(versions) == truth["ledgers"]
    assert sorted(versions.values()).count(2) == len(truth["superseded_files"])
    people = residents(ledger_sim.state.district, ledger_sim.state.scale)
    elderly = {person_key(p.id_no, SECRET) for p in people if p.birth_date.year <= 1966}
    assert served and served <= elderly  # the same keys as every feed gives these people

    # Nothing new upstream: nothing is fetched, nothing written.
    again = load(ledger_sim, warehouse_url)
    assert (again.source_rows, again.inserted_rows, again.updated_rows) == (0, 0, 0)

    # Two ledgers corrected: their new versions replace every row of the old ones.
    republished = sim(ledger_sim, "/_sim/elderly_care/republish?count=2", "POST")["republished"]
    assert len(republished) == 2
    after = sim(ledger_sim, f"/_sim/truth?feed=elderly_care&months={MONTHS}")
    replaced = [after["by_ledger"][f.rsplit("_v", 1)[0]] for f in republished]
    codes = {s.aliases[0]: s.code for s in ledger_sim.state.district.streets}
    batches = []
    for f in republished:
        month, street = f.split("_")[:2]
        batches.append(f"{month}:{codes[street]}")
    with psycopg.connect(warehouse_url) as conn:
        old_rows = conn.execute(
            "select count(*) from core.fact_service where source_batch = any(%s)", (batches,)
        ).fetchone()[0]

    third = load(ledger_sim, warehouse_url)

    assert third.source_rows == sum(x["meals"] + x["day_care"] for x in replaced)
    assert third.updated_rows == old_rows > 0  # every row of the older versions went
    with psycopg.connect(warehouse_url) as conn:
        now = dict(
            conn.execute(
                "select source_batch, array_agg(distinct source_version) from core.fact_service "
                "where source_batch = any(%s) group by 1",
                (batches,),
            ).fetchall()
        )
    assert now == {b: [x["version"]] for b, x in zip(batches, replaced, strict=True)}
    totals = warehouse_totals(warehouse_url)
    assert totals["meals"][:3] == (
        after["meals"]["loaded"],
        after["meals"]["loaded"],
        Decimal(after["amount_yuan"]),
    )
    assert totals["day_care"][:2] == (after["day_care"]["loaded"], Decimal(after["hours"]))

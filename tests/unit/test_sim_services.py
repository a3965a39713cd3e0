"""The services truth (``/_sim/truth?feed=services``) agrees with each feed's own truth counts."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest

from civicflow.identity import resident_id
from civicflow.simulator.server import make_server

AS_OF = dt.date(2025, 12, 5)


@pytest.fixture(scope="module")
def state():
    server = make_server(scale=0.002, as_of=AS_OF)
    server.server_close()
    return server.state


def test_every_feed_lists_the_rows_its_truth_counts(state):
    health = state.health.truth()
    services = state.health.services()
    assert len(services) == health["loaded"]
    assert Counter(s["status"] for s in services)["cancelled"] == health["cancelled"]

    ledgers = state.elderly_care.truth()
    services = state.elderly_care.services()
    assert Counter(s["service_area"] for s in services) == {
        sheet: ledgers[sheet]["loaded"] for sheet in ("meals", "day_care")
    }
    assert {s["record_id"].split(":")[0] for s in services} == {
        x["file"] for x in ledgers["by_ledger"].values()
    }  # the newest version of each ledger only

    helped = state.volunteer.truth()["volunteer_help"]
    services = state.volunteer.services()
    assert len(services) == helped["loaded"]
    assert {s["service_area"] for s in services} == {"volunteer_help"}


def test_services_name_people_by_their_canonical_id_and_date_them_in_the_past(state):
    rows = [*state.health.services(), *state.elderly_care.services(), *state.volunteer.services()]
    assert all(resident_id(s["id_no"]) == s["id_no"] for s in rows)
    assert all(dt.date.fromisoformat(s["service_date"]) < AS_OF for s in rows)
    ids = {p.id_no for p in state.elderly_care.residents}
    assert {s["id_no"] for s in rows} <= ids

"""The civil-affairs register end to end: checked CSV snapshots over real HTTP, person history.

The expected history is computed from the simulator's ground truth by a small
model of the rules (a change closes and opens a version, a departure closes,
a quarantined row with a valid ID number leaves the person as they were) and
compared with ``core.dim_person`` row for row.
"""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest

from civicflow.config import FeedSettings
from civicflow.feeds.civil_affairs import REGISTER
from civicflow.feeds.positions import COMMUNITIES, STREETS
from civicflow.httpclient import FeedError
from civicflow.identity import person_key
from civicflow.pipeline import BatchError, run_entity
from civicflow.simulator.server import DEMO_REGISTER_LOGIN, RunningSimulator

from ..conftest import fast_client
from ..conftest import sim_call as sim

AS_OF = dt.date(2026, 11, 27)  # snapshots 2026-11-20 .. 2026-11-26
SECRET = b"a-test-secret-of-32-bytes-length"


@pytest.fixture
def register_sim():
    with RunningSimulator(port=0, scale=0.002, as_of=AS_OF) as running:
        yield running


def settings(simulator, **options) -> FeedSettings:
    return FeedSettings(
        feed="civil_affairs",
        base_url=f"{simulator.url}/civil_affairs",
        auth=DEMO_REGISTER_LOGIN,
        options=options,
    )


def load(simulator, url: str, until: dt.date, **options):
    feed = settings(simulator, **options)
    return run_entity(REGISTER, feed, url, until, until, "test", fast_client(feed), SECRET)


def truth(simulator, day: dt.date) -> dict:
    return sim(simulator, f"/_sim/truth?feed=civil_affairs&date={day}")


def apply(model: dict, day: dt.date, facts: dict) -> None:
    """The history rules, applied to {person_key: [[attributes, valid_from, valid_to], ...]}."""
    register = {
        person_key(id_no, SECRET): (community, tuple(kinds), status, gender, born)
        for id_no, (community, kinds, status, gender, born) in facts["register"].items()
    }
    held = {person_key(id_no, SECRET) for id_no in facts["held"]}
    for key, versions in model.items():
        current = versions[-1]
        if current[2] is None and key not in held and register.get(key) != current[0]:
            current[2] = day
    for key, attributes in register.items():
        versions = model.setdefault(key, [])
        if not versions or versions[-1][2] is not None:
            versions.append([attributes, day, None])


def history(url: str) -> set[tuple]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "select person_key, community_code, categories, registry_status, gender, birth_year, "
            "valid_from, valid_to, is_current from core.dim_person"
        ).fetchall()
    assert all((valid_to is None) == current for *_, valid_to, current in rows)
    return {(k, (c, tuple(cats), s, g, b), f, t) for k, c, cats, s, g, b, f, t, _ in rows}


def expected(model: dict) -> set[tuple]:
    return {(k, attrs, f, t) for k, versions in model.items() for attrs, f, t in versions}


def load_divisions(simulator, url: str) -> None:
    feed = FeedSettings(feed="positions", base_url=f"{simulator.url}/positions")
    for entity in (STREETS, COMMUNITIES):
        run_entity(entity, feed, url, AS_OF, AS_OF, "test", fast_client(feed))


def test_snapshots_become_person_history_in_order_and_a_corrupt_export_loads_nothing(
    register_sim, warehouse_url
):
    load_divisions(register_sim, warehouse_url)
    days = [AS_OF - dt.timedelta(days=n) for n in range(7, 0, -1)]
    model: dict = {}

    # The first run takes the newest snapshot not after its day, and only that one.
    first_day = days[2]
    facts = truth(register_sim, first_day)
    assert facts["duplicates"] > 0 and facts["id_spellings"] > 0
    assert all(n > 0 for n in facts["quarantined"].values())
    first = load(register_sim, warehouse_url, first_day)
    assert (first.source_rows, first.accepted_rows, first.duplicate_rows) == (
        facts["rows"],
        facts["loaded"],
        facts["duplicates"],
    )
    assert first.quarantined_rows == sum(facts["quarantined"].values())
    assert (first.inserted_rows, first.updated_rows, first.watermark) == (
        facts["loaded"],
        0,
        first_day.isoformat(),
    )
    with psycopg.connect(warehouse_url) as conn:
        reasons = dict(
            conn.execute(
                "select split_part(reasons[1], ' ''', 1), count(*) from quarantine.rejected_row "
                "where feed = 'civil_affairs' group by 1"
            ).fetchall()
        )
        with_subject = conn.execute(
            "select count(*) from quarantine.rejected_row where subject_key is not null"
        ).fetchone()[0]
    assert reasons == facts["quarantined"]
    assert with_subject == facts["quarantined"]["unknown community"]  # valid ID numbers
    apply(model, first_day, facts)
    assert history(warehouse_url) == expected(model)

    # A corrupt export (same size, other bytes) fails the run; nothing of the batch is loaded.
    sim(register_sim, f"/_sim/civil_affairs/corrupt?date={days[4]}", "POST")
    with pytest.raises(FeedError, match=r"sha256 .* does not match"):
        load(register_sim, warehouse_url, days[6])
    assert history(warehouse_url) == expected(model)
    with psycopg.connect(warehouse_url) as conn:
        failed = conn.execute(
            "select status, error from meta.load_audit where feed = 'civil_affairs' "
            "order by started_at desc limit 1"
        ).fetchone()
        watermark = conn.execute(
            "select watermark from meta.feed_state where feed = 'civil_affairs'"
        ).fetchone()[0]
        landed = conn.execute(
            "select count(*) from raw.payload p join meta.load_audit a using (load_id) "
            "where a.status = 'failed'"
        ).fetchone()[0]
    assert failed[0] == "failed" and "residents_20261124.csv" in failed[1]
    assert (watermark, landed) == (first_day.isoformat(), 0)
    sim(register_sim, "/_sim/civil_affairs/corrupt", "DELETE")

    # Days missed are caught up in order; a stricter departure guard refuses them first.
    with pytest.raises(BatchError, match=r"would end .* current registrations"):
        load(register_sim, warehouse_url, days[6], max_departure_share=0.0001)
    assert history(warehouse_url) == expected(model)
    caught_up = load(register_sim, warehouse_url, days[6])
    assert caught_up.watermark == days[6].isoformat()
    for day in days[3:]:
        apply(model, day, truth(register_sim, day))
    assert history(warehouse_url) == expected(model)
    closed = sum(1 for versions in model.values() for v in versions if v[2] is not None)
    assert closed > 0 and caught_up.updated_rows == closed
    assert any(len(versions) > 1 for versions in model.values())  # changes made new versions

    # Nothing new upstream: the next run writes nothing.
    again = load(register_sim, warehouse_url, days[6])
    assert (again.source_rows, again.inserted_rows, again.updated_rows) == (0, 0, 0)
    assert history(warehouse_url) == expected(model)

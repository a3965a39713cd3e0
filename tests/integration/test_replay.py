"""A steward's quarantine review and replay, end to end, against the simulator's ground truth.

The health feed quarantines records whose community spelling no alias list has. A steward
reviews them by reason, adds aliases (once by mistake), and replays: exactly those records
move to core, through the same validation and merge, as replay batches of their own; the
audit adds up for every batch, nothing is fetched, no watermark moves, and replaying again
changes nothing. The DAG's tasks do the same through Airflow connections. Replays of the
other publishing styles: positions (an old record never overwrites a later load), the
register (history opens on the snapshot, never goes back) and the ledgers (core ends as a
clean load would have left it).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import psycopg
import pytest

from civicflow.config import FeedSettings
from civicflow.feeds.civil_affairs import REGISTER
from civicflow.feeds.elderly_care import LEDGERS
from civicflow.feeds.health import SERVICE_RECORDS
from civicflow.feeds.positions import COMMUNITIES, POSITIONS, STREETS
from civicflow.identity import person_key
from civicflow.pipeline import open_warehouse, run_entity
from civicflow.replay import ReplayError, reason_kind, replay, review, review_and_preview
from civicflow.simulator.people import unknown_community_spelling
from civicflow.simulator.server import (
    DEMO_CLIENT,
    DEMO_LEDGER_TOKEN,
    DEMO_REGISTER_LOGIN,
    RunningSimulator,
)

from ..conftest import fast_client, fresh_database, login_as, sim_call

DAY = dt.date(2026, 11, 20)
AS_OF = dt.date(2026, 11, 27)  # register snapshots 2026-11-20 .. 2026-11-26
LEDGER_DAY = AS_OF - dt.timedelta(days=1)
SECRET = b"a-test-secret-of-32-bytes-length"
UNKNOWN = "unknown community"
INVALID = "invalid ID number check digit"


@pytest.fixture
def health_sim():
    with RunningSimulator(port=0, scale=0.001) as running:
        yield running


@pytest.fixture
def week_sim():
    with RunningSimulator(port=0, scale=0.002, as_of=AS_OF) as running:
        yield running


def feed_of(simulator, name: str, **kwargs) -> FeedSettings:
    return FeedSettings(feed=name, base_url=f"{simulator.url}/{name}", **kwargs)


def load_divisions(simulator, url: str) -> None:
    feed = feed_of(simulator, "positions")
    for entity in (STREETS, COMMUNITIES):
        run_entity(entity, feed, url, DAY, DAY, "test", fast_client(feed))


def load_health(simulator, url: str):
    feed = feed_of(simulator, "health", auth=DEMO_CLIENT, options={"page_size": 200})
    return run_entity(SERVICE_RECORDS, feed, url, DAY, DAY, "test", fast_client(feed), SECRET)


def load_register(simulator, url: str, until: dt.date):
    feed = feed_of(simulator, "civil_affairs", auth=DEMO_REGISTER_LOGIN)
    return run_entity(REGISTER, feed, url, until, until, "test", fast_client(feed), SECRET)


def load_ledgers(simulator, url: str, entity=None):

    feed = feed_of(
        simulator, "elderly_care", auth=("", DEMO_LEDGER_TOKEN), options={"lookback_months": 2}
    )
    return run_entity(
        entity or LEDGERS, feed, url, LEDGER_DAY, LEDGER_DAY, "test", fast_client(feed), SECRET
    )


def rows(url: str, query: str, params=()) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchall()


def ledger_rows(url: str) -> set[tuple]:
    return set(
        rows(
            url,
            "select service_id, person_key, service_area, service_type, position_code, "
            "community_code, street_code, service_date, quantity, unit, amount_yuan, status, "
            "source_batch, source_version from core.fact_service "
            "where source_feed = 'elderly_care'",
        )
    )


def bookkeeping(url: str) -> dict[str, list[tuple]]:
    """What a replay must leave alone (feed state, fetched batches, raw) or must add up."""
    return {
        "feed_state": rows(url, "select * from meta.feed_state order by feed, entity"),
        "fetched": rows(
            url, "select * from meta.load_audit where replay_of is null order by started_at"
        ),
        "raw": rows(url, "select count(*), max(payload_id) from raw.payload"),
        "feed_health": rows(
            url,
            "select feed, last_success_at, last_snapshot_or_watermark, rows_last_load, "
            "quarantined_last_load, status from marts.feed_health order by feed",
        ),
    }


def assert_every_batch_adds_up(url: str) -> None:
    audits = rows(
        url,
        "select load_id, status, source_rows, accepted_rows, quarantined_rows, duplicate_rows "
        "from meta.load_audit",
    )
    assert audits
    for load_id, status, source, accepted, quarantined, duplicates in audits:
        assert status in ("succeeded", "replayed"), (load_id, status)
        assert source == accepted + quarantined + duplicates, load_id
        in_quarantine = rows(
            url, "select count(*) from quarantine.rejected_row where load_id = %s", (load_id,)
        )[0][0]
        assert in_quarantine == quarantined, load_id


class _Events:
    """What a task's ``outlet_events`` records, as the task adds assets through its alias."""

    def __init__(self):
        self.added: list[tuple] = []

    def __getitem__(self, alias):
        events = self

        class _Alias:
            def add(self, asset, extra=None):
                events.added.append((alias, asset, extra))

        return _Alias()


def test_a_steward_replays_quarantined_health_records_after_adding_aliases(
    health_sim, warehouse_url
):
    load_divisions(health_sim, warehouse_url)
    first = load_health(health_sim, warehouse_url)
    feed = health_sim.state.health
    unknown = {rid for rid, kind in feed.dirt.items() if kind == "unknown_community"}
    invalid = {rid for rid, kind in feed.dirt.items() if kind == "invalid_check_digit"}
    communities = {feed.subjects[rid].community.code: feed.subjects[rid] for rid in unknown}
    assert unknown and invalid and len(communities) >= 2
    assert first.quarantined_rows == len(unknown) + len(invalid)
    loaded = {r[0] for r in rows(warehouse_url, "select source_record_id from core.fact_service")}

    # Review: the open rows by reason, with the spellings as examples.
    with open_warehouse(warehouse_url) as conn:
        reviewed = review(conn, "health")
    by_reason = {r.reason: r for r in reviewed}
    assert {k: r.count for k, r in by_reason.items()} == {
        UNKNOWN: len(unknown),
        INVALID: len(invalid),
    }
    assert all(r.entity == "service_records" for r in reviewed)
    spellings = {unknown_community_spelling(p.community) for p in communities.values()}
    assert all(any(s in e for s in spellings) for e in by_reason[UNKNOWN].examples)
    before = bookkeeping(warehouse_url)

    # A steward adds an alias, by mistake to two communities of one street: still unresolved.
    resident = communities[min(communities)]
    wrong = resident.community
    twin = next(c for c in resident.street.communities if c.code != wrong.code)
    wrong_spelling = unknown_community_spelling(wrong)
    with login_as(warehouse_url, "steward") as steward, psycopg.connect(steward) as conn:
        conn.execute(
            "insert into quarantine.community_alias (alias, community_code, note) "
            "values (%s, %s, 'seen in health records'), (%s, %s, 'a slip')",
            (wrong_spelling, wrong.code, wrong_spelling, twin.code),
        )
        conn.commit()
        added_by = conn.execute("select distinct added_by from quarantine.community_alias")
        assert [r[0] for r in added_by] == [conn.info.user]
        for forbidden in (
            "update quarantine.rejected_row set reasons = '{}'",
            "delete from core.fact_service",
            "insert into meta.feed_state (feed, entity, load_id) "
            "values ('x', 'y', gen_random_uuid())",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(forbidden)
            conn.rollback()
    ambiguous = {rid for rid in unknown if feed.subjects[rid].community.code == wrong.code}

    first_replay = replay(warehouse_url, "health", "service_records", secret=SECRET)
    assert first_replay.status == "replayed"
    assert (first_replay.candidates, first_replay.unchanged) == (
        len(unknown) + len(invalid),
        len(unknown) + len(invalid) - len(ambiguous),
    )
    assert (first_replay.source_rows, first_replay.accepted_rows) == (len(ambiguous), 0)
    assert first_replay.quarantined_rows == len(ambiguous)
    assert first_replay.new_reasons == {"ambiguous community name": len(ambiguous)}
    assert first_replay.replay_of == (first.load_id,)

    # The steward removes the slip and adds the right spellings; a dry run changes nothing.
    with login_as(warehouse_url, "steward") as steward, psycopg.connect(steward) as conn:
        conn.execute(
            "delete from quarantine.community_alias where community_code = %s", (twin.code,)
        )
        conn.cursor().executemany(
            "insert into quarantine.community_alias (alias, community_code) values (%s, %s)",
            [
                (unknown_community_spelling(p.community), code)
                for code, p in communities.items()
                if code != wrong.code
            ],
        )
        conn.commit()
    middle = (
        bookkeeping(warehouse_url),
        rows(warehouse_url, "select * from quarantine.rejected_row"),
    )
    dry = replay(warehouse_url, "health", "service_records", dry_run=True, secret=SECRET)
    assert (dry.status, dry.load_id) == ("dry_run", None)
    assert (dry.accepted_rows, dry.inserted_rows, dry.unchanged) == (
        len(unknown),
        len(unknown),
        len(invalid),
    )
    after_dry = (
        bookkeeping(warehouse_url),
        rows(warehouse_url, "select * from quarantine.rejected_row"),
    )
    assert after_dry == middle
    assert rows(warehouse_url, "select count(*) from core.fact_service")[0][0] == len(loaded)
    # Narrowed to another reason, the same replay finds nothing to do.
    narrowed = replay(
        warehouse_url, "health", "service_records", [INVALID], dry_run=True, secret=SECRET
    )
    assert (narrowed.status, narrowed.candidates, narrowed.source_rows) == (
        "nothing_to_replay",
        len(invalid),
        0,
    )

    second = replay(
        warehouse_url,
        "health",
        "service_records",
        [UNKNOWN, "ambiguous community"],
        secret=SECRET,
        run_id="replay__t",
    )
    assert (second.status, second.accepted_rows, second.inserted_rows) == (
        "replayed",
        len(unknown),
        len(unknown),
    )
    assert (second.quarantined_rows, second.duplicate_rows, second.unchanged) == (0, 0, 0)
    assert set(second.replay_of) == {first.load_id, first_replay.load_id}

    # Exactly the held-back records moved to core, where their residents live.
    moved = rows(
        warehouse_url,
        "select source_record_id, community_code, street_code from core.fact_service "
        "where load_id = %s",
        (second.load_id,),
    )
    assert {r[0] for r in moved} == unknown
    assert all(
        (c, s) == (feed.subjects[rid].community.code, feed.subjects[rid].street.code)
        for rid, c, s in moved
    )
    assert {
        r[0] for r in rows(warehouse_url, "select source_record_id from core.fact_service")
    } == (loaded | unknown)

    # The bookkeeping shows the move; fetched batches, feed state and raw are as they were.
    after = bookkeeping(warehouse_url)
    assert after == before
    assert_every_batch_adds_up(warehouse_url)
    replays = rows(
        warehouse_url,
        "select load_id::text, status, run_id, watermark, replay_of::text[] from meta.load_audit "
        "where replay_of is not null order by started_at",
    )
    assert [(r[0], r[1], r[3]) for r in replays] == [
        (first_replay.load_id, "replayed", None),
        (second.load_id, "replayed", None),
    ]
    assert replays[0][2].startswith("replay__") and replays[1][2] == "replay__t"
    outcomes = dict(
        rows(
            warehouse_url,
            "select coalesce(replay_outcome, 'open'), count(*) from quarantine.rejected_row "
            "where load_id = %s group by 1",
            (first.load_id,),
        )
    )
    assert outcomes == {
        "accepted": len(unknown) - len(ambiguous),
        "quarantined": len(ambiguous),
        "open": len(invalid),
    }
    assert rows(
        warehouse_url,
        "select count(*) from quarantine.rejected_row where load_id = %s "
        "and origin_load_id = %s and replay_outcome = 'accepted' and replayed_in = %s",
        (first_replay.load_id, first.load_id, second.load_id),
    ) == [(len(ambiguous),)]
    assert rows(
        warehouse_url,
        "select load_id::text, quarantined_rows, accepted_later, duplicate_later, "
        "still_quarantined from meta.quarantine_outcome",
    ) == [(first.load_id, len(unknown) + len(invalid), len(unknown), 0, len(invalid))]
    still = rows(
        warehouse_url,
        "select reasons from quarantine.rejected_row where replayed_in is null",
    )
    assert len(still) == len(invalid) and all(reason_kind(r[0][0]) == INVALID for r in still)

    # Replaying again finds nothing new and writes nothing.
    settled = (
        bookkeeping(warehouse_url),
        rows(warehouse_url, "select count(*) from meta.load_audit"),
    )
    again = replay(warehouse_url, "health", "service_records", secret=SECRET)
    assert (again.status, again.candidates, again.unchanged, again.source_rows) == (
        "nothing_to_replay",
        len(invalid),
        len(invalid),
        0,
    )
    assert (
        bookkeeping(warehouse_url),
        rows(warehouse_url, "select count(*) from meta.load_audit"),
    ) == settled

    # A positions reload keeps the stewards' aliases; the next fetch resolves with them and
    # finds the replayed rows already there.
    load_divisions(health_sim, warehouse_url)
    assert rows(warehouse_url, "select count(*) from quarantine.community_alias") == [
        (len(communities),)
    ]
    fetched = load_health(health_sim, warehouse_url)
    assert (fetched.inserted_rows, fetched.updated_rows) == (0, 0)
    assert_every_batch_adds_up(warehouse_url)

    # Analysts see what became of quarantined rows, never the rows or the aliases.
    with login_as(warehouse_url, "analyst") as analyst, psycopg.connect(analyst) as conn:
        assert conn.execute(
            "select sum(accepted_later) from meta.quarantine_outcome"
        ).fetchone() == (len(unknown),)
        for table in ("rejected_row", "community_alias", "street_alias"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"select * from quarantine.{table}")  # noqa: S608
            conn.rollback()


def test_the_review_the_dag_shows_and_refusals(health_sim, warehouse_url):
    load_divisions(health_sim, warehouse_url)
    load_health(health_sim, warehouse_url)
    shown = review_and_preview(warehouse_url, "health", "service_records", [UNKNOWN], SECRET)
    assert shown["target"] == "core.fact_service" and len(shown["loads"]) == 1
    assert [r["reason"] for r in shown["reasons"]] == [UNKNOWN]
    assert shown["would_publish"] is False  # no alias yet: every row fails as before
    assert "change nothing" in shown["markdown"]
    assert shown["preview"]["unchanged"] == shown["reasons"][0]["count"]

    with pytest.raises(ReplayError, match="no entity 'ledgers' in feed 'health'"):
        replay(warehouse_url, "health", "ledgers", secret=SECRET)
    with pytest.raises(ReplayError, match="person-key secret"):
        replay(warehouse_url, "health", "service_records")


def test_the_dag_tasks_review_ask_and_replay(health_sim, warehouse_url, monkeypatch):
    """The quarantine_replay DAG's task callables, as Airflow calls them, on a real warehouse."""

    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk.exceptions import AirflowFailException

    from civicflow.airflow.ingest import table_asset

    bag = DagBag(dag_folder=str(Path(__file__).parents[2] / "dags" / "quarantine_replay.py"))
    assert bag.import_errors == {}
    dag = bag.dags["quarantine_replay"]
    review_task, decide, replay_task = (dag.get_task(t) for t in ("review", "decide", "replay"))
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", warehouse_url)
    monkeypatch.setenv("CIVICFLOW_PERSON_KEY", SECRET.decode())
    monkeypatch.setenv("CIVICFLOW_ENV", "test")
    load_divisions(health_sim, warehouse_url)
    load_health(health_sim, warehouse_url)
    feed = health_sim.state.health
    unknown = {rid for rid, kind in feed.dirt.items() if kind == "unknown_community"}
    with psycopg.connect(warehouse_url) as conn:
        conn.cursor().executemany(
            "insert into quarantine.community_alias (alias, community_code) values (%s, %s) "
            "on conflict do nothing",
            [
                (
                    unknown_community_spelling(feed.subjects[r].community),
                    feed.subjects[r].community.code,
                )
                for r in unknown
            ],
        )

    params = {"feed": "health", "entity": "service_records", "reasons": None, "dry_run": True}
    reviewed = review_task.python_callable(params=params)
    assert reviewed["would_publish"] and reviewed["preview"]["accepted_rows"] == len(unknown)
    assert f"accepts **{len(unknown)}** row(s) into `core.fact_service`" in reviewed["markdown"]
    assert decide.python_callable(reviewed, params=params) is False  # a dry run stops here
    real = {**params, "dry_run": False}
    assert decide.python_callable(reviewed, params=real) is True

    events = _Events()
    summary = replay_task.python_callable(
        reviewed, params=real, run_id="manual__t", outlet_events=events
    )
    assert (summary["status"], summary["inserted_rows"]) == ("replayed", len(unknown))
    ((alias, asset, extra),) = events.added
    assert alias == replay_task.outlets[0] and asset == table_asset("core.fact_service")
    assert extra["load_id"] == summary["load_id"]
    assert rows(
        warehouse_url,
        "select run_id from meta.load_audit where load_id = %s",
        (summary["load_id"],),
    ) == [("replay__manual__t",)]
    # A retry after the replay committed finds nothing and emits nothing.
    events = _Events()
    again = replay_task.python_callable(
        reviewed, params=real, run_id="manual__t", outlet_events=events
    )
    assert again["status"] == "nothing_to_replay" and events.added == []

    with pytest.raises(AirflowFailException, match="no entity 'register' in feed 'health'"):
        review_task.python_callable(params={**params, "entity": "register"})


def test_an_old_position_record_never_overwrites_what_a_later_load_wrote(simulator, warehouse_url):
    """Positions upsert without a last-change time: a replayed record must not win by age."""
    load_divisions(simulator, warehouse_url)
    feed = feed_of(simulator, "positions")
    index, position = next(
        (i, p) for i, p in enumerate(simulator.state.district.positions) if p.level == "community"
    )
    spelling = f"{position.community.aliases[0]}居委会"
    sim_call(
        simulator,
        "/_sim/faults",
        "POST",
        {
            "rules": [
                {
                    "path": "/positions/positions",
                    "kind": "bad_record",
                    "field": "community",
                    "value": spelling,
                    "index": index,
                    "times": 1,
                }
            ]
        },
    )
    held = run_entity(POSITIONS, feed, warehouse_url, DAY, DAY, "test", fast_client(feed))
    assert held.quarantined_rows == 1
    with login_as(warehouse_url, "steward") as steward, psycopg.connect(steward) as conn:
        conn.execute(
            "insert into quarantine.community_alias (alias, community_code) values (%s, %s)",
            (spelling, position.community.code),
        )
        conn.commit()
    now = replay(warehouse_url, "positions", "positions", dry_run=True)
    assert (now.accepted_rows, now.inserted_rows, now.superseded_rows) == (1, 1, 0)

    reloaded = run_entity(POSITIONS, feed, warehouse_url, DAY, DAY, "test", fast_client(feed))
    assert reloaded.quarantined_rows == 0
    late = replay(warehouse_url, "positions", "positions")
    assert (late.source_rows, late.accepted_rows, late.duplicate_rows) == (1, 0, 1)
    assert late.superseded_rows == 1
    assert rows(
        warehouse_url,
        "select load_id::text from core.dim_position where position_code = %s",
        (position.position_code,),
    ) == [(reloaded.load_id,)]
    assert rows(
        warehouse_url,
        "select load_id::text, quarantined_rows, accepted_later, duplicate_later, "
        "still_quarantined from meta.quarantine_outcome",
    ) == [(held.load_id, 1, 0, 1, 0)]
    assert_every_batch_adds_up(warehouse_url)


def test_a_register_replay_opens_the_history_of_the_people_held_back(week_sim, warehouse_url):

    day = AS_OF - dt.timedelta(days=2)
    load_divisions(week_sim, warehouse_url)
    first = load_register(week_sim, warehouse_url, day)
    register = week_sim.state.civil_affairs
    register.truth(day)
    entries = register._registers[day]
    once = register._build(day)[1]["once"]  # held back on this day alone
    always = {i for i, kind in register.dirt.items() if kind == "unknown_community"}
    communities = {entries[i].community.code for i in always if i in entries}
    held = {i for i in always if i in entries} | {once}
    now = {i for i in held if entries[i].community.code in communities}
    later = held - now
    assert len(now) >= 2 and later == {once}
    versions = rows(warehouse_url, "select count(*) from core.dim_person")[0][0]

    def add_aliases(people: set[str]) -> None:
        with login_as(warehouse_url, "steward") as steward, psycopg.connect(steward) as conn:
            conn.cursor().executemany(
                "insert into quarantine.community_alias (alias, community_code) "
                "values (%s, %s) on conflict do nothing",
                [
                    (unknown_community_spelling(entries[i].community), entries[i].community.code)
                    for i in people
                ],
            )
            conn.commit()

    add_aliases(now)
    state = rows(warehouse_url, "select * from meta.feed_state")
    summary = replay(warehouse_url, "civil_affairs", "register", secret=SECRET)
    assert (summary.status, summary.accepted_rows, summary.inserted_rows) == (
        "replayed",
        len(now),
        len(now),
    )
    assert summary.replay_of == (first.load_id,)
    opened = rows(
        warehouse_url,
        "select person_key, community_code, valid_from, is_current from core.dim_person "
        "where load_id = %s",
        (summary.load_id,),
    )
    assert set(opened) == {
        (person_key(i, SECRET), entries[i].community.code, day, True) for i in now
    }
    assert rows(warehouse_url, "select count(*) from core.dim_person")[0][0] == versions + len(now)
    assert rows(warehouse_url, "select * from meta.feed_state") == state
    assert_every_batch_adds_up(warehouse_url)

    # The next snapshot applies as usual; the person held back on that one day alone is loaded
    # from it. Their row of the day before, replayed now, is overtaken: history never goes back.
    load_register(week_sim, warehouse_url, day + dt.timedelta(days=1))
    add_aliases(later)
    overtaken = replay(warehouse_url, "civil_affairs", "register", secret=SECRET)
    assert (overtaken.source_rows, overtaken.accepted_rows) == (1, 0)
    assert (overtaken.duplicate_rows, overtaken.superseded_rows) == (1, 1)
    assert rows(
        warehouse_url,
        "select valid_from from core.dim_person where person_key = %s",
        (person_key(once, SECRET),),
    ) == [(day + dt.timedelta(days=1),)]
    assert_every_batch_adds_up(warehouse_url)
    assert replay(warehouse_url, "civil_affairs", "register", secret=SECRET).source_rows == 0


def test_replayed_ledger_rows_end_as_a_clean_load_would_have_left_them(
    week_sim, warehouse_url, postgres
):
    """A street spelling the warehouse did not know held back a street's ledgers; a steward's
    street alias and a replay leave core exactly as a load that knew the spelling."""

    with fresh_database(postgres) as clean_url:
        load_divisions(week_sim, clean_url)
        load_ledgers(week_sim, clean_url)
        clean = ledger_rows(clean_url)

    load_divisions(week_sim, warehouse_url)
    street = week_sim.state.district.streets[0]
    spelling = street.aliases[0]  # how the ledgers name the street
    with psycopg.connect(warehouse_url) as conn:
        conn.execute(
            "update core.dim_street set aliases = array_remove(aliases, %s) where street_code = %s",
            (spelling, street.code),
        )
    lenient = dataclasses.replace(LEDGERS, max_rejection_rate=0.5)
    held = load_ledgers(week_sim, warehouse_url, lenient)
    with open_warehouse(warehouse_url) as conn:
        reasons = {r.reason: r.count for r in review(conn, "elderly_care", "ledgers")}
    assert reasons["unknown street"] > 0
    assert ledger_rows(warehouse_url) < clean

    with login_as(warehouse_url, "steward") as steward, psycopg.connect(steward) as conn:
        conn.execute(
            "insert into quarantine.street_alias (alias, street_code, note) values (%s, %s, %s)",
            (spelling, street.code, "the ledgers' own spelling"),
        )
        conn.commit()
    summary = replay(warehouse_url, "elderly_care", "ledgers", ["unknown street"], secret=SECRET)
    assert (summary.accepted_rows, summary.inserted_rows) == (
        reasons["unknown street"],
        reasons["unknown street"],
    )
    assert summary.replay_of == (held.load_id,)
    assert ledger_rows(warehouse_url) == clean
    assert_every_batch_adds_up(warehouse_url)

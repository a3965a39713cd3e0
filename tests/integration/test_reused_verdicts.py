"""Register snapshots reuse the rows of unchanged records, and end exactly as judging every one.

Two warehouses load the same week of daily snapshots over real HTTP: one with the
register as it ships (``reuse_unchanged``), one with reuse turned off. After every
day the person history, the quarantine, the audit counts and the GX results must be
the same in both; the first warehouse must have judged only the records that changed.
Then a steward's alias makes a community name ambiguous, so records accepted the day
before are no longer acceptable as they are: the fingerprint of what judged them has
changed, nothing is reused, and both warehouses still agree.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import psycopg
import pytest

from civicflow.config import FeedSettings
from civicflow.feeds.civil_affairs import REGISTER
from civicflow.feeds.positions import COMMUNITIES, STREETS
from civicflow.pipeline import run_entity
from civicflow.simulator.server import DEMO_REGISTER_LOGIN, RunningSimulator

from ..conftest import fast_client, fresh_database

AS_OF = dt.date(2026, 11, 27)  # snapshots 2026-11-20 .. 2026-11-26
SECRET = b"a-test-secret-of-32-bytes-length"
JUDGING_EVERY_RECORD = dataclasses.replace(REGISTER, reuse_unchanged=False)


@pytest.fixture
def register_sim():
    with RunningSimulator(port=0, scale=0.002, as_of=AS_OF) as running:
        yield running


@pytest.fixture
def second_warehouse(postgres, migrated_template):
    with fresh_database(postgres, migrated_template) as url:
        yield url


def load(simulator, url: str, day: dt.date, entity=REGISTER):
    feed = FeedSettings(
        feed="civil_affairs", base_url=f"{simulator.url}/civil_affairs", auth=DEMO_REGISTER_LOGIN
    )
    return run_entity(entity, feed, url, day, day, "test", fast_client(feed), SECRET)


def load_divisions(simulator, url: str) -> None:
    feed = FeedSettings(feed="positions", base_url=f"{simulator.url}/positions")
    for entity in (STREETS, COMMUNITIES):
        run_entity(entity, feed, url, AS_OF, AS_OF, "test", fast_client(feed))


def state(url: str) -> dict[str, list[tuple]]:
    """Everything a register load leaves for readers, without the load ids that differ."""
    with psycopg.connect(url) as conn:
        return {
            "history": conn.execute(
                "select person_key, gender, birth_year, street_code, community_code, categories, "
                "registry_status, valid_from, valid_to, is_current, source_updated_at "
                "from core.dim_person order by 1, valid_from"
            ).fetchall(),
            "quarantine": conn.execute(
                "select a.watermark, q.source_index, q.record, q.reasons, q.failed_expectations, "
                "q.subject_key from quarantine.rejected_row q join meta.load_audit a "
                "using (load_id) where q.feed = 'civil_affairs' order by 1, 2"
            ).fetchall(),
            "audit": conn.execute(
                "select watermark, status, source_rows, accepted_rows, quarantined_rows, "
                "duplicate_rows, inserted_rows, updated_rows, unchanged_rows "
                "from meta.load_audit where feed = 'civil_affairs' order by started_at"
            ).fetchall(),
            "dq": conn.execute(
                "select a.watermark, d.expectation, d.success, d.unexpected_count, "
                "round(d.unexpected_percent::numeric, 9) from meta.dq_result d "
                "join meta.load_audit a using (load_id) where a.feed = 'civil_affairs' "
                "order by 1, 2"
            ).fetchall(),
        }


def last_batch(url: str) -> tuple:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "select load_id, reused_rows, accepted_rows, verdict_fingerprint from meta.load_audit "
            "where feed = 'civil_affairs' order by started_at desc limit 1"
        ).fetchone()


def staged_batches(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "select load_id, count(*) from staging.civil_affairs__register group by 1"
        ).fetchall()


def test_unchanged_records_keep_their_rows_and_the_warehouse_ends_as_judging_all_would(
    register_sim, warehouse_url, second_warehouse
):
    reusing, judging = warehouse_url, second_warehouse
    for url in (reusing, judging):
        load_divisions(register_sim, url)
    days = [AS_OF - dt.timedelta(days=n) for n in range(7, 0, -1)]

    reused = []
    for day in days[:5]:
        load(register_sim, reusing, day)
        load(register_sim, judging, day, JUDGING_EVERY_RECORD)
        assert state(reusing) == state(judging)
        load_id, reused_rows, accepted, fingerprint = last_batch(reusing)
        reused.append((reused_rows, accepted))
        assert fingerprint is not None
        assert last_batch(judging)[1] is None  # an entity that does not reuse says nothing
        # The published batch's rows stay staged for the next; the batch before it is gone.
        assert staged_batches(reusing) == [(load_id, accepted)]
        assert staged_batches(judging) == []

    assert reused[0][0] == 0  # nothing to reuse on the first day
    for reused_rows, accepted in reused[1:]:
        # Most records of a day are the day before's; the ones that changed were judged.
        assert 0.5 * accepted < reused_rows < accepted

    # A steward's alias gives a community's own name to its neighbour: records naming it are
    # ambiguous now, although they were accepted yesterday and are unchanged today.
    with psycopg.connect(reusing) as conn:
        street, community, neighbour = conn.execute(
            "select c.street_code, c.community_name, n.community_code from core.dim_community c "
            "join core.dim_community n on n.street_code = c.street_code "
            "and n.community_code <> c.community_code "
            "join core.dim_person p on p.community_code = c.community_code and p.is_current "
            "group by 1, 2, 3 order by count(*) desc limit 1"
        ).fetchone()
    for url in (reusing, judging):
        with psycopg.connect(url) as conn:
            conn.execute(
                "insert into quarantine.community_alias (alias, community_code) values (%s, %s)",
                (community, neighbour),
            )
    before = last_batch(reusing)[3]
    load(register_sim, reusing, days[5])
    load(register_sim, judging, days[5], JUDGING_EVERY_RECORD)
    _, reused_rows, _, fingerprint = last_batch(reusing)
    assert (reused_rows, fingerprint != before) == (0, True)
    assert state(reusing) == state(judging)
    with psycopg.connect(reusing) as conn:
        ambiguous = conn.execute(
            "select count(*) from quarantine.rejected_row where reasons[1] like %s",
            (f"ambiguous community name {community!r} in street {street}",),
        ).fetchone()[0]
    assert ambiguous > 0

    # The next day reuses again, under the new fingerprint.
    load(register_sim, reusing, days[6])
    load(register_sim, judging, days[6], JUDGING_EVERY_RECORD)
    assert state(reusing) == state(judging)
    _, reused_rows, accepted, _ = last_batch(reusing)
    assert 0.5 * accepted < reused_rows < accepted

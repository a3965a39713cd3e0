"""Crash safety, idempotency and concurrency of loads, with real processes and real SIGKILLs.

**Crash safety.** As under Airflow, where each step is a task and each task a process, a
loading process (``crash_driver.py``) runs the step to be killed and the steps after it;
it stops itself at a chosen point, its transaction open, and is SIGKILLed there: in the
middle of landing payloads (extract), in the middle of staging (validate), inside the
merge after the core upsert but before the feed state and the audit, after them just
before the commit, inside the register's history publishing between closing and opening
versions, and inside the ledgers' publishing between deleting a replaced version's rows
and inserting the new ones. Every core table (checksummed) and ``meta.feed_state`` must be
exactly as before; retrying as Airflow would (the killed task again: a new extract, or
the same load id) must converge to what an uninterrupted run of the same data left in a
second warehouse: checksums of every core table and the feed state, bookkeeping columns
(load ids, timestamps) aside. A merge killed after its commit is found published by its
retry.

**Idempotency.** A rerun over data already loaded changes nothing: after each recovery, a
further run of the same day; after the concurrent load, a second run of every feed for the
same day (a DAG run run twice, at the pipeline level; through Airflow,
``tests/dags/test_airflow_run.py`` runs ``positions_ingest`` a second time); and the same
data delivered again with the watermark lost, so that the health feed, the register and
the ledgers (which publish by their own statements) re-publish all they already hold.
Backfilling over days already loaded is ``test_backfill.py``'s.

**Concurrency.** With positions loaded once, all five ingest feeds run at once against one
warehouse, a process each, released together once imported (each runs its feed's entities
in the DAG's order, extract, validate and merge, as a DAG run does): no process may fail
or meet a deadlock, every batch's audit must add up, rows must match the simulator's
ground truth, and no core key may hold two rows. These are not Airflow's LocalExecutor
(``airflow dags test`` runs a DAG's tasks in its own process, one at a time); what the
database sees is the same, though: independent processes, each with its own connections,
writing the same core tables (three feeds write ``core.fact_service``) at once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg import sql

from civicflow.config import FeedSettings
from civicflow.feeds import FEEDS
from civicflow.feeds import entity as lookup
from civicflow.pipeline import extract, merge, run_entity, validate
from civicflow.simulator.server import (
    DEMO_API_KEY,
    DEMO_CLIENT,
    DEMO_LEDGER_TOKEN,
    DEMO_REGISTER_LOGIN,
    RunningSimulator,
)
from civicflow.simulator.world import visits_document

from ..conftest import fast_client, fresh_database
from ..conftest import sim_call as sim
from .test_backfill import checksums

DRIVER = Path(__file__).with_name("crash_driver.py")
ROOT = Path(__file__).resolve().parents[2]
# The simulator's today is the real one: health cancellations happen now, after the records.
AS_OF = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()
DAY = AS_OF - dt.timedelta(days=1)  # the run's logical day; the register has a snapshot of it
SECRET = "a-test-secret-of-32-bytes-length"
AUTH = {
    "health": DEMO_CLIENT,
    "civil_affairs": DEMO_REGISTER_LOGIN,
    "elderly_care": ("", DEMO_LEDGER_TOKEN),
    "volunteer": ("", DEMO_API_KEY),
}
OPTIONS = {
    "health": {"page_size": 10},  # the batch killed below spans several payloads
    # The ledgers republished below are the newest published month's: 1 or 2 months back.
    "elderly_care": {"lookback_months": 2},
    "volunteer": {"limit": 200},
}
CANCELLED = 40  # health records cancelled upstream between the first load and the killed one
REPUBLISHED = 2  # ledgers republished upstream likewise: their new versions replace rows


def settings(simulator: RunningSimulator, feed: str, **options) -> FeedSettings:
    return FeedSettings(
        feed,
        f"{simulator.url}/{feed}",
        auth=AUTH.get(feed),
        options={**OPTIONS.get(feed, {}), **options},
    )


def load(simulator, url: str, feed: str, name: str, day: dt.date = DAY, **options):
    """One batch in this process, as ``run_entity`` runs it."""
    feed_settings = settings(simulator, feed, **options)
    return run_entity(
        lookup(feed, name),
        feed_settings,
        url,
        day,
        day,
        "test",
        fast_client(feed_settings),
        SECRET.encode(),
    )


FEED_STATE = {
    "whole": "*",
    "business": "feed, entity, watermark, snapshot_sha256",
    # A rerun's batch may hold other payloads (the records at the watermark, read again):
    # the checksum of what it fetched changes, the watermark must not.
    "watermark": "feed, entity, watermark",
}


def extract_here(simulator, url: str, feed: str, name: str, run_id: str) -> str:
    """The extract step of a batch, in this process; returns its load id."""
    feed_settings = settings(simulator, feed)
    client = fast_client(feed_settings)
    return extract(lookup(feed, name), feed_settings, url, DAY, DAY, run_id, client)


def feed_state(url: str, columns: str = "business") -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            f"select {FEED_STATE[columns]} from meta.feed_state order by 1, 2"  # noqa: S608
        ).fetchall()


def warehouse(url: str, feed_columns: str = "business") -> tuple:
    """What a load must leave right: core's checksums (bookkeeping aside) and the feed state."""
    return checksums(url), feed_state(url, feed_columns)


def driver(job: dict, stdout=subprocess.PIPE, stderr=None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(DRIVER), json.dumps(job)],
        stdout=stdout,
        stderr=stderr,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def job(
    simulator,
    url: str,
    feed: str,
    names: list[str],
    point: str | None = None,
    barrier: str | None = None,
    **options,
) -> dict:
    s = settings(simulator, feed, **options)
    return {
        "url": url,
        "feed": {"feed": feed, "base_url": s.base_url, "auth": s.auth, "options": s.options},
        "entities": names,
        "start": DAY.isoformat(),
        "end": DAY.isoformat(),
        "secret": SECRET,
        "run_id": f"crash-{point}" if point else "concurrent",
        "point": point,
        "barrier": barrier,
    }


def wait_for_line(proc: subprocess.Popen, expected: str, timeout_s: float) -> None:
    """Wait until the process prints ``expected`` (or fail, if it ends or takes too long)."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if selector.select(timeout=max(0.0, deadline - time.monotonic())):
                line = proc.stdout.readline()
                if line.strip() == expected:
                    return
                if not line:  # the end of its output: it has ended, or is about to
                    break
    raise AssertionError(f"the driver never printed {expected!r} (exit code {proc.poll()})")


def backends(url: str) -> list[tuple[int, str]]:
    """Other sessions on the warehouse: (pid, state)."""
    with psycopg.connect(url) as conn:
        return conn.execute(
            "select pid, state from pg_stat_activity "
            "where datname = current_database() and pid <> pg_backend_pid()"
        ).fetchall()


def written_tables(url: str, pid: int) -> set[str]:
    """The tables a session has written to in its open transaction."""
    with psycopg.connect(url) as conn:
        return {
            t
            for (t,) in conn.execute(
                "select c.oid::regclass::text from pg_locks l "
                "join pg_class c on c.oid = l.relation where l.pid = %s "
                "and l.mode = 'RowExclusiveLock' and c.relkind = 'r'",
                (pid,),
            )
        }


# --- crash safety ------------------------------------------------------------------------------

# point -> (feed, entity, a table the killed transaction must have written to, the step
# killed). As under Airflow, each step is a process: the killed process runs the killed step
# and the steps after it; the steps before it ran in this process.
STEPS = ["extract", "validate", "merge"]
KILLS = {
    "extract-landing": ("health", "service_records", "raw.payload", "extract"),
    "validate-staging": ("health", "service_records", "quarantine.rejected_row", "validate"),
    "merge-after-upsert": ("health", "service_records", "core.fact_service", "merge"),
    "merge-before-commit": ("health", "service_records", "meta.feed_state", "merge"),
    "register-after-close": ("civil_affairs", "register", "core.dim_person", "merge"),
    "ledgers-after-delete": ("elderly_care", "ledgers", "core.fact_service", "merge"),
}
# Killed after the merge's commit, before the task returned: see the test of its own below.
COMMITTED = "merge-committed"


@pytest.fixture(scope="module")
def crash_sim():
    with RunningSimulator(port=0, scale=0.001, as_of=AS_OF) as running:
        yield running


@pytest.fixture(scope="module")
def loaded_once(crash_sim, postgres, migrated_template) -> str:
    """A warehouse after a first day: references, health, ledgers, the register's snapshot of
    the eve. Then upstream, health records are cancelled and ledgers republished: the next
    health batch updates rows, the next ledgers batch replaces some.
    """
    with fresh_database(postgres, migrated_template) as url:
        for name in ("streets", "communities", "positions"):
            load(crash_sim, url, "positions", name)
        load(crash_sim, url, "health", "service_records", page_size=500)
        load(crash_sim, url, "elderly_care", "ledgers")
        load(crash_sim, url, "civil_affairs", "register", DAY - dt.timedelta(days=1))
        sim(crash_sim, f"/_sim/health/cancel?count={CANCELLED}", "POST")
        sim(crash_sim, f"/_sim/elderly_care/republish?count={REPUBLISHED}", "POST")
        yield psycopg.conninfo.conninfo_to_dict(url)["dbname"]


@pytest.fixture(scope="module")
def uninterrupted(crash_sim, postgres, loaded_once) -> dict[str, tuple]:
    """Per feed, what one uninterrupted run of the day leaves on top of ``loaded_once``."""
    out = {}
    for feed, name, _, _ in KILLS.values():
        if feed in out:
            continue
        with fresh_database(postgres, loaded_once) as url:
            batch = load(crash_sim, url, feed, name)
            assert batch.status == "succeeded" and batch.updated_rows, batch  # rows replaced
            out[feed] = warehouse(url)
    return out


@pytest.fixture(scope="module")
def killed(crash_sim, postgres, loaded_once, tmp_path_factory):
    """Every point's driver started, each on its own copy of ``loaded_once``, the steps before
    the one it kills done here first; they run at once.

    Each is SIGKILLed once it reports standing at its point; yields, per point, the
    warehouse's URL, its state before the run and after the kill, and what the killed
    session had written to.
    """
    logs = tmp_path_factory.mktemp("crash")
    with contextlib.ExitStack() as stack:
        started = {}
        for point, (feed, name, _, step) in {
            **KILLS,
            COMMITTED: KILLS["merge-after-upsert"],
        }.items():
            url = stack.enter_context(fresh_database(postgres, loaded_once))
            before = (checksums(url), feed_state(url, "whole"))
            work = job(crash_sim, url, feed, [name], point)
            work["steps"] = STEPS[STEPS.index(step) :]
            if step != "extract":
                work["load_id"] = extract_here(crash_sim, url, feed, name, f"crash-{point}")
            if step == "merge":
                validate(lookup(feed, name), url, work["load_id"], SECRET.encode())
            stderr = stack.enter_context((logs / f"{point}.log").open("w"))
            proc = driver(work, stderr=stderr)
            stack.callback(lambda p=proc: p.poll() is None and p.kill())
            started[point] = (url, before, proc, time.monotonic())
        out = {}
        for point, (url, before, proc, t0) in started.items():
            wait_for_line(proc, f"at {point}", timeout_s=180)
            reached = time.monotonic() - t0
            sessions = backends(url)
            written = [written_tables(url, pid) for pid, state in sessions]
            os.kill(proc.pid, signal.SIGKILL)
            code = proc.wait(timeout=30)
            proc.stdout.close()
            deadline = time.monotonic() + 30
            while backends(url) and time.monotonic() < deadline:  # the server notices the EOF
                time.sleep(0.05)
            out[point] = {
                "url": url,
                "before": before,
                "after": (checksums(url), feed_state(url, "whole")),
                "sessions": [state for _, state in sessions],
                "written": written,
                "exit_code": code,
                "left": backends(url),
                "reached_s": round(reached, 1),
                "log": logs / f"{point}.log",
            }
        yield out


@pytest.mark.parametrize("point", list(KILLS))
def test_a_load_killed_mid_step_leaves_nothing_and_its_retry_converges(
    point, killed, uninterrupted, crash_sim
):
    feed, name, table, step = KILLS[point]
    kill = killed[point]
    url = kill["url"]
    assert kill["exit_code"] == -signal.SIGKILL, kill["log"].read_text()[-3000:]
    # Nothing of the killed batch shows: every core table and the feed state as before.
    assert kill["after"] == kill["before"]
    # The kill landed where it should: in an open transaction that had written there.
    assert kill["sessions"] == ["idle in transaction"]  # one session, its transaction open
    assert table in kill["written"][0], kill["written"]
    assert kill["left"] == []  # the server ended the killed session

    # What stays behind is the batch's audit row, as far as its last committed step.
    entity = lookup(feed, name)
    with psycopg.connect(url) as conn:
        [(load_id, status, accepted)] = conn.execute(
            "select load_id::text, status, accepted_rows from meta.load_audit where run_id = %s",
            (f"crash-{point}",),
        ).fetchall()
        staged = conn.execute(
            sql.SQL("select count(*) from {} where load_id = %s").format(
                sql.Identifier("staging", entity.staging_table)
            ),
            (load_id,),
        ).fetchone()[0]
    print(
        f"\n{point}: reached after {kill['reached_s']} s; the killed transaction had written "
        f"{sorted(kill['written'][0])}; left: audit {status!r}, {staged} rows in staging"
    )
    assert status == {"extract": "extracting", "validate": "extracted", "merge": "validated"}[step]
    assert staged == (accepted if step == "merge" else 0)

    # The retry Airflow would make: the killed task again (a new extract, or the same load).
    if step == "extract":
        load(crash_sim, url, feed, name)
    else:
        if step == "validate":
            validate(entity, url, load_id, SECRET.encode())
        assert merge(entity, url, load_id).status == "succeeded"
    assert warehouse(url) == uninterrupted[feed]

    # And a further run of the same day finds nothing to change.
    converged = warehouse(url, "watermark")
    again = load(crash_sim, url, feed, name)
    assert (again.status, again.inserted_rows, again.updated_rows) == ("succeeded", 0, 0)
    assert warehouse(url, "watermark") == converged
    with psycopg.connect(url) as conn:
        unbalanced = conn.execute(
            "select count(*) from meta.load_audit where status = 'succeeded' "
            "and source_rows <> accepted_rows + quarantined_rows + duplicate_rows"
        ).fetchone()[0]
    assert unbalanced == 0


# --- concurrency and idempotency ---------------------------------------------------------------


def months_back(day: dt.date, n: int) -> list[str]:
    months, (year, month) = [], (day.year, day.month)
    for _ in range(n + 1):
        months.insert(0, f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return months


@pytest.fixture
def concurrent_sim():
    with RunningSimulator(port=0, scale=0.001, as_of=AS_OF) as running:
        yield running


def test_all_feeds_at_once_neither_deadlock_nor_lose_or_double_rows_and_a_rerun_changes_nothing(
    concurrent_sim, warehouse_url, tmp_path
):
    sim_ = concurrent_sim
    url = warehouse_url
    for entity in FEEDS["positions"]:  # the day before: the divisions every feed resolves
        load(sim_, url, "positions", entity.name, DAY - dt.timedelta(days=1))

    barrier = tmp_path / "go"
    with contextlib.ExitStack() as stack:
        procs = {}
        for feed, entities in FEEDS.items():
            log = stack.enter_context((tmp_path / f"{feed}.log").open("w+"))
            names = [e.name for e in entities]
            work = job(sim_, url, feed, names, page_size=200, barrier=str(barrier))
            procs[feed] = (driver(work, stderr=log), log)
            stack.callback(lambda p=procs[feed][0]: p.poll() is None and p.kill())
        for proc, _ in procs.values():  # Python, pandas and GX imported: all start together
            wait_for_line(proc, "ready", timeout_s=300)
        barrier.touch()
        started = time.monotonic()
        for feed, (proc, log) in procs.items():
            out, _ = proc.communicate(timeout=600)
            log.seek(0)
            errors = log.read()
            assert proc.returncode == 0, f"{feed}: {errors[-4000:]}"
            assert "deadlock" not in errors.lower()
            assert len(out.splitlines()) == len(FEEDS[feed])
        wall = time.monotonic() - started
    with psycopg.connect(url) as conn:
        spans = conn.execute(
            "select feed, min(started_at), max(finished_at) from meta.load_audit "
            "where run_id = 'concurrent' group by feed order by 2"
        ).fetchall()
    first = spans[0][1]
    together = min(end for _, _, end in spans) - max(start for _, start, _ in spans)
    print(
        f"\nconcurrent load: {wall:.1f} s for all five; per feed, its first batch's start and "
        f"its last batch's end (s): "
        + ", ".join(
            f"{feed} {(a - first).total_seconds():.2f}-{(b - first).total_seconds():.2f}"
            for feed, a, b in spans
        )
        + f"; all five loading at once for {together.total_seconds():.2f} s"
    )
    # The loads did overlap: each feed's with another's at least (all five at once, too,
    # on an idle machine; a busy one may start a process late, so that is not asserted).
    assert all(
        any(a < b2 and a2 < b for other, a2, b2 in spans if other != feed) for feed, a, b in spans
    ), spans

    with psycopg.connect(url) as conn:
        audits = conn.execute(
            "select feed, entity, status, source_rows = accepted_rows + quarantined_rows "
            "+ duplicate_rows, accepted_rows, (select count(*) from quarantine.rejected_row q "
            "where q.load_id = a.load_id) = quarantined_rows from meta.load_audit a "
            "where run_id = 'concurrent'"
        ).fetchall()
        rows = dict(
            conn.execute(
                "select source_feed, count(*) from core.fact_service group by 1"
            ).fetchall()
        )
        counts = {
            t: conn.execute(sql.SQL("select count(*) from {}").format(sql.Identifier("core", t)))
            .fetchone()[0]
            for t in ("dim_street", "dim_community", "dim_position", "fact_position_day",
                      "dim_volunteer", "fact_activity", "fact_volunteer_hours")
        }  # fmt: skip
        register = conn.execute(
            "select count(*) filter (where is_current and valid_from = %s), "
            "count(*) - count(distinct person_key) filter (where is_current) - count(*) "
            "filter (where not is_current) from core.dim_person",
            (DAY,),
        ).fetchone()
        ledger_versions = conn.execute(
            "select count(*) from (select source_batch from core.fact_service "
            "where source_feed = 'elderly_care' group by 1 "
            "having count(distinct source_version) > 1) twice"
        ).fetchone()[0]
        doubled = conn.execute(
            "select count(*) - count(distinct (source_feed, source_record_id)) "
            "from core.fact_service"
        ).fetchone()[0]
    assert len(audits) == sum(len(e) for e in FEEDS.values())
    assert all(
        status == "succeeded" and adds_up and kept for _, _, status, adds_up, _, kept in audits
    )

    # Ground truth: every feed's rows, neither lost nor doubled.
    health = sim(sim_, "/_sim/truth?feed=health")
    volunteer = sim(sim_, "/_sim/truth?feed=volunteer")
    ledgers = sim(sim_, f"/_sim/truth?feed=elderly_care&months={','.join(months_back(DAY, 2))}")
    snapshot = sim(sim_, f"/_sim/truth?feed=civil_affairs&date={DAY}")
    places = sim(sim_, "/_sim/truth")
    district = sim_.state.district
    visits = sum(len(visits_document(district, DAY - dt.timedelta(days=d))) for d in range(4))
    assert rows == {
        "health": health["loaded"],
        "volunteer": volunteer["volunteer_help"]["loaded"],
        "elderly_care": ledgers["meals"]["loaded"] + ledgers["day_care"]["loaded"],
    }
    assert counts == {
        "dim_street": places["streets"],
        "dim_community": places["communities"],
        "dim_position": places["positions"],
        "fact_position_day": visits,
        "dim_volunteer": volunteer["volunteers"]["loaded"],
        "fact_activity": volunteer["activities"]["loaded"],
        "fact_volunteer_hours": volunteer["service-hours"]["loaded"],
    }
    print(f"rows: fact_service {rows}, {counts}, dim_person current {register[0]}")
    assert register == (snapshot["loaded"], 0)  # one current version a person, all of them
    assert (ledger_versions, doubled) == (0, 0)

    # Idempotency: the same day run again, feed after feed, changes nothing.
    loaded = warehouse(url, "watermark")
    for feed, entities in FEEDS.items():
        for entity in entities:
            again = load(sim_, url, feed, entity.name, page_size=200)
            assert (again.inserted_rows, again.updated_rows) == (0, 0), again
    assert warehouse(url, "watermark") == loaded

    # And the same data delivered again in full (the watermark lost): the keyed merge, the
    # register's history and the ledgers' versions all re-publish it without a change.
    with psycopg.connect(url) as conn:
        conn.execute(
            "delete from meta.feed_state where (feed, entity) in (('health', 'service_records'), "
            "('civil_affairs', 'register'), ('elderly_care', 'ledgers'))"
        )
    for feed, name in (
        ("health", "service_records"),
        ("civil_affairs", "register"),
        ("elderly_care", "ledgers"),
    ):
        again = load(sim_, url, feed, name, page_size=200)
        assert again.source_rows > 0 and (again.inserted_rows, again.updated_rows) == (0, 0), again
    assert warehouse(url, "watermark") == loaded


def test_a_load_killed_after_its_commit_is_published_once_and_its_retry_finds_it(
    killed, uninterrupted
):
    kill = killed[COMMITTED]
    url = kill["url"]
    assert kill["exit_code"] == -signal.SIGKILL
    assert kill["sessions"] == []  # the merge's connection was closed: nothing was open
    assert kill["after"][0] == uninterrupted["health"][0]  # the batch is in, whole
    with psycopg.connect(url) as conn:
        [(load_id, status)] = conn.execute(
            "select load_id::text, status from meta.load_audit where run_id = %s",
            (f"crash-{COMMITTED}",),
        ).fetchall()
    assert status == "succeeded"
    # Airflow retries the task it saw die: the merge of the same load finds it published.
    again = merge(lookup("health", "service_records"), url, load_id)
    assert again.status == "succeeded" and again.updated_rows == CANCELLED
    assert warehouse(url) == uninterrupted["health"]

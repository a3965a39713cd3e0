"""A loading process for the crash-safety tests: run as a real subprocess, it can stop itself.

``python tests/integration/crash_driver.py '<json>'`` runs extract → validate → merge for
the entities given, in order, against a warehouse and the simulator over HTTP, through
the functions Airflow's tasks call (each step opens its own connection). The JSON holds
``url`` (the warehouse), ``feed`` (FeedSettings' fields), ``entities`` (names in the feed),
``start`` and ``end`` (days), ``secret``, ``run_id`` and, optionally, ``steps`` (some of
extract, validate and merge: a task's process runs one under Airflow) with ``load_id``
(of the batch an earlier step made), ``point``: where to stop, and ``barrier``: a file
to wait for, once imported, before loading (it prints ``ready``).

At ``point`` the driver prints ``at <point>`` on stdout and sleeps, its transaction open,
so that the test can SIGKILL it exactly there. The points are made here, in the driver's
own process, by wrapping psycopg's ``Cursor.execute`` and two pipeline functions; the
product code has no hooks. Without a point, it prints one JSON summary per batch.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
from typing import Any

import psycopg
from psycopg import sql

from civicflow import pipeline
from civicflow.config import FeedSettings
from civicflow.feeds import entity as lookup
from civicflow.httpclient import RetryPolicy, client_for

# point -> (phase, statement text it matches, "before" or "after" it, which occurrence)
POINTS: dict[str, tuple[str, str, str, int]] = {
    # extract: two payloads landed (uncommitted), more to come
    "extract-landing": ("extract", "insert into raw.payload", "after", 2),
    # merge: the core upsert done, neither the feed state nor the audit written yet
    "merge-after-upsert": ("merge", "insert into meta.feed_state", "before", 1),
    # merge: feed state and audit written, staging cleared; the commit is next
    "merge-before-commit": ("merge", 'delete from "staging".', "after", 1),
    # the register's publishing: current versions closed, the new ones not opened yet
    "register-after-close": ("merge", "set valid_to = %(day)s", "after", 1),
    # the ledgers' publishing: earlier versions' rows deleted, the new rows not inserted
    "ledgers-after-delete": ("merge", "insert into core.fact_service", "before", 1),
}
# validate: the second chunk staged (uncommitted), more to come; see ``_BatchWriter.write``
STAGING_POINT = "validate-staging"
# merge: committed, but the task has not returned (Airflow would retry it: the same load)
COMMITTED_POINT = "merge-committed"

phase = "extract"
seen: dict[str, int] = {}


def stop_here(point: str) -> None:
    print(f"at {point}", flush=True)
    time.sleep(600)  # the test kills the process long before this ends
    sys.exit(3)


def install(point: str) -> None:
    if point == COMMITTED_POINT:
        merge = pipeline.merge

        def merging(*args: Any, **kwargs: Any) -> Any:
            merge(*args, **kwargs)
            stop_here(point)

        pipeline.merge = merging
        return
    if point == STAGING_POINT:
        pipeline.CHUNK_RECORDS = 1  # a payload a chunk: the batch is staged in several
        write = pipeline._BatchWriter.write

        def writing(self: Any, verdicts: Any) -> None:
            write(self, verdicts)
            if self.chunks == 2:
                stop_here(point)

        pipeline._BatchWriter.write = writing  # type: ignore[method-assign]
        return

    wanted_phase, text, when, occurrence = POINTS[point]
    execute = psycopg.Cursor.execute

    def executing(self: psycopg.Cursor, query: Any, *args: Any, **kwargs: Any) -> Any:
        statement = query.as_string(self) if isinstance(query, sql.Composable) else str(query)
        hit = phase == wanted_phase and text in statement
        if hit:
            seen[point] = seen.get(point, 0) + 1
            hit = seen[point] == occurrence
        if hit and when == "before":
            stop_here(point)
        result = execute(self, query, *args, **kwargs)
        if hit:
            stop_here(point)
        return result

    psycopg.Cursor.execute = executing  # type: ignore[method-assign]


def main(argv: list[str]) -> int:
    global phase
    job = json.loads(argv[0])
    feed = FeedSettings(**{**job["feed"], "auth": tuple(job["feed"].get("auth") or ()) or None})
    client = client_for(feed, policy=RetryPolicy(backoff_base_s=0.01, backoff_max_s=0.05))
    start, end = dt.date.fromisoformat(job["start"]), dt.date.fromisoformat(job["end"])
    secret = job["secret"].encode()
    if job.get("point"):
        install(job["point"])
    if job.get("barrier"):  # ready to load (the slow imports done); start when told
        import great_expectations  # noqa: F401
        import pandas  # noqa: F401

        print("ready", flush=True)
        while not os.path.exists(job["barrier"]):
            time.sleep(0.02)
    steps = job.get("steps") or ["extract", "validate", "merge"]
    load_id = job.get("load_id")
    for name in job["entities"]:
        entity = lookup(feed.feed, name)
        if "extract" in steps:
            phase = "extract"
            load_id = pipeline.extract(entity, feed, job["url"], start, end, job["run_id"], client)
        if "validate" in steps:
            phase = "validate"
            pipeline.validate(entity, job["url"], load_id, secret)
        if "merge" in steps:
            phase = "merge"
            summary = pipeline.merge(entity, job["url"], load_id)
            print(json.dumps(summary.as_dict()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

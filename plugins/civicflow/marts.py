"""The analysts' marts: refreshed together, concurrently, so readers never see a half-built one.

The marts are defined in ``sql/migrations`` (materialized views with a unique index);
``marts.feed_health`` is a plain view and always current.
"""

from __future__ import annotations

import logging
import queue
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

MARTS = (
    "position_monthly",
    "elderly_coverage",
    "unreached_vulnerable",
    "fifteen_minute_circle",
    "volunteer_monthly",
)
# Longest first, so that on several connections the longest starts at once and the others
# share the rest (a district-year: elderly_coverage 4.4 s, position_monthly 2.9 s, then
# 1.3, 0.8 and 0.1 s, one after the other on an idle machine).
LONGEST_FIRST = (
    "elderly_coverage",
    "position_monthly",
    "unreached_vulnerable",
    "volunteer_monthly",
    "fifteen_minute_circle",
)
WORKERS = 2


def refresh_one(conn: psycopg.Connection, name: str) -> float:
    """Refresh one materialized mart concurrently, in its own transaction; returns seconds."""
    started = time.perf_counter()
    with conn.transaction():
        conn.execute(
            sql.SQL("refresh materialized view concurrently {}").format(
                sql.Identifier("marts", name)
            )
        )
    return round(time.perf_counter() - started, 3)


def refresh(conn: psycopg.Connection) -> dict[str, float]:
    """Refresh every materialized mart, one after the other; returns the seconds each took."""
    took = {name: refresh_one(conn, name) for name in MARTS}
    log.info("marts refreshed: %s", took)
    return took


def refresh_all(url: str, workers: int = WORKERS) -> dict[str, float]:
    """Refresh every materialized mart on up to ``workers`` warehouse connections at once.

    Each mart is one statement that PostgreSQL runs on about one core, so on a 2-core
    server two connections took a district-year's refresh from 10.6-13.1 s to 7.7-8.2 s.
    Each connection takes the next mart, longest first. Returns the seconds each took;
    a failure is raised once every connection has finished.
    """
    from civicflow.pipeline import open_warehouse

    pending: queue.SimpleQueue[str] = queue.SimpleQueue()
    for name in LONGEST_FIRST:
        pending.put(name)

    def run() -> dict[str, float]:
        took: dict[str, float] = {}
        with open_warehouse(url) as conn:
            while True:
                try:
                    name = pending.get_nowait()
                except queue.Empty:
                    return took
                took[name] = refresh_one(conn, name)

    count = max(1, min(workers, len(MARTS)))
    with ThreadPoolExecutor(max_workers=count, thread_name_prefix="marts") as pool:
        futures = [pool.submit(run) for _ in range(count)]
    failures = [f.exception() for f in futures if f.exception() is not None]
    if failures:
        raise failures[0]
    took = {name: seconds for f in futures for name, seconds in f.result().items()}
    log.info("marts refreshed on %d connections: %s", count, took)
    return {name: took[name] for name in MARTS}

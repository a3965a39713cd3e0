"""The analysts' marts: refreshed together, concurrently, so readers never see a half-built one.

The marts are defined in ``sql/migrations`` (materialized views with a unique index);
``marts.feed_health`` is a plain view and always current.
"""

from __future__ import annotations

import logging
import time

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


def refresh(conn: psycopg.Connection) -> dict[str, float]:
    """Refresh every materialized mart concurrently; returns the seconds each took."""
    took = {}
    for name in MARTS:
        started = time.perf_counter()
        with conn.transaction():
            conn.execute(
                sql.SQL("refresh materialized view concurrently {}").format(
                    sql.Identifier("marts", name)
                )
            )
        took[name] = round(time.perf_counter() - started, 3)
    log.info("marts refreshed: %s", took)
    return took

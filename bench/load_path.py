"""The load path of every feed entity against three other ways of loading the same rows.

For each entity the simulator's payloads for a district-year (``--scale`` 1.0 is
domain.md's volumes) are landed in ``raw`` by the pipeline's own ``extract`` over
HTTP, untimed. Then the load path is timed: ``validate`` (read and decode the
payloads, parse, GX, resolve, write staging and quarantine) and ``merge`` into core.
The rows it staged (exactly; a key staged by two chunks of a batch, of which
staging keeps one, counts twice) are then loaded into the same embedded PostgreSQL
(durable, as ``LocalPostgres`` defaults to) three more ways, each into an empty
table: a bare ``COPY`` (the limit), a COPY into a temporary table then ``INSERT … ON
CONFLICT`` into a keyed table (the least a keyed load does), ``pandas.DataFrame.to_sql``
with its defaults, and dlt (``dlt[postgres]``, pinned in bench/requirements.txt) with
``write_disposition="merge"`` and the entity's key. GX's share of the load path is
timed by wrapping ``civicflow.validation.SuiteRun`` (each chunk's check, the batch's finish).
The ceiling is what the load path would reach if parsing, validating and resolving cost
nothing: reading and decoding the payloads (timed alone), then the COPY and upsert.

``.venv/bin/python bench/load_path.py --scale 0.1`` prints a table and writes
``bench/results/load-path-<date>.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from unittest import mock
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql

import civicflow.pipeline as pipeline
import civicflow.validation as validation
from civicflow.config import FeedSettings
from civicflow.feeds import FEEDS
from civicflow.httpclient import RetryPolicy, client_for
from civicflow.localdb import LocalPostgres, free_port
from civicflow.simulator.server import (
    DEMO_API_KEY,
    DEMO_CLIENT,
    DEMO_LEDGER_TOKEN,
    DEMO_REGISTER_LOGIN,
    RunningSimulator,
)
from civicflow.spec import SQL_TYPES, Entity

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SECRET = b"a-bench-secret-of-32-bytes-long!"
# Feeds in the order they depend on each other: positions gives the divisions every
# other feed resolves against, volunteers and activities those the hours need.
ORDER = ("positions", "civil_affairs", "health", "elderly_care", "volunteer")
TARGETS = {"share_of_raw_copy": 0.25, "times_dlt": 5.0, "validation_share": 0.20}

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")  # dlt: no telemetry, ever
os.environ.setdefault("RUNTIME__LOG_LEVEL", "ERROR")


def feed_settings(feed: str, base_url: str) -> FeedSettings:
    """The connection each feed gets, sized so that one run takes the whole district-year."""
    url = f"{base_url}/{feed}"
    return {
        "positions": lambda: FeedSettings(
            feed, url, options={"lookback_days": 365, "max_catchup_days": 365}
        ),
        "civil_affairs": lambda: FeedSettings(feed, url, auth=DEMO_REGISTER_LOGIN),
        "health": lambda: FeedSettings(feed, url, auth=DEMO_CLIENT, options={"page_size": 1000}),
        "elderly_care": lambda: FeedSettings(
            feed, url, auth=("", DEMO_LEDGER_TOKEN), options={"lookback_months": 12}
        ),
        "volunteer": lambda: FeedSettings(
            feed, url, auth=("", DEMO_API_KEY), options={"limit": 1000}
        ),
    }[feed]()


class DirectHealthClient:
    """The health API's pages, taken from the simulator's state instead of over HTTP.

    The simulator sorts every record again for each page it serves, so landing a
    district-year over HTTP grows with the square of the scale (227 s at scale 0.1).
    These are the same documents, encoded as the simulator encodes them, and
    ``extract`` lands them as ever; extraction is not part of the load path.
    """

    def __init__(self, sim: RunningSimulator, feed: FeedSettings):
        self.attempts = 0
        self.base_url = feed.base_url
        self.rows = sim.state.health.listing(None)

    def get_json(self, path: str, params: dict[str, Any]) -> Any:
        from civicflow.httpclient import Fetched

        page, size = int(params["page"]), min(int(params["page_size"]), 1000)
        document = {
            "data": self.rows[(page - 1) * size : page * size],
            "page": page,
            "page_size": size,
            "total": len(self.rows),
            "total_pages": max(1, -(-len(self.rows) // size)),
        }
        body = json.dumps(document, ensure_ascii=False).encode("utf-8")
        self.attempts += 1
        return Fetched(document, body, f"{self.base_url}/{path}?page={page}&page_size={size}")


class Timings:
    """Seconds spent in the pipeline's steps, by wrapping them for the length of a batch."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.staged: list[dict[str, Any]] = []

    def timed(self, name: str, function: Callable) -> Callable:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started

        return wrapper

    def timed_iterator(self, name: str, function: Callable) -> Callable:
        """``function`` returns an iterator: the time of each of its steps is counted."""

        def wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
            iterator = iter(function(*args, **kwargs))
            while True:
                started = time.perf_counter()
                try:
                    item = next(iterator)
                except StopIteration:
                    return
                finally:
                    self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started
                yield item

        return wrapper

    @contextlib.contextmanager
    def watching(self) -> Iterator[Timings]:
        original_copy = pipeline._copy_staged

        def copy_staged(conn, entity, table, load_id, rows, *more):  # keep the very rows staged
            self.staged.extend(rows.values())
            return original_copy(conn, entity, table, load_id, rows, *more)

        writer, suite = pipeline._BatchWriter, validation.SuiteRun
        with (
            mock.patch.object(
                pipeline, "_payloads", self.timed_iterator("read_decode_s", pipeline._payloads)
            ),
            mock.patch.object(pipeline, "judge", self.timed("judge_s", pipeline.judge)),
            mock.patch.object(writer, "write", self.timed("stage_s", writer.write)),
            mock.patch.object(writer, "finish", self.timed("stage_s", writer.finish)),
            mock.patch.object(suite, "check", self.timed("gx_check_s", suite.check)),
            mock.patch.object(suite, "finish", self.timed("gx_finish_s", suite.finish)),
            mock.patch.object(pipeline, "_copy_staged", self.timed("copy_staged_s", copy_staged)),
        ):
            yield self


# --- the other ways of loading the same rows ---------------------------------------------------


def _fresh_table(conn: psycopg.Connection, schema: str, entity: Entity) -> sql.Composed:
    table = sql.Identifier(schema, entity.staging_table)
    conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
    conn.execute(sql.SQL("drop table if exists {}").format(table))
    return table


def raw_copy(url: str, entity: Entity, rows: list[dict[str, Any]]) -> float:
    """Seconds for a bare COPY of the typed rows into an empty table of the same types."""
    names = [c.name for c in entity.columns]
    with psycopg.connect(url, autocommit=True) as conn:
        table = _fresh_table(conn, "bench_copy", entity)
        conn.execute(
            sql.SQL("create table {} ({})").format(
                table,
                sql.SQL(", ").join(
                    sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(SQL_TYPES[c.type]))
                    for c in entity.columns
                ),
            )
        )
        statement = sql.SQL("copy {} ({}) from stdin").format(
            table, sql.SQL(", ").join(map(sql.Identifier, names))
        )
        started = time.perf_counter()
        with conn.transaction(), conn.cursor() as cur, cur.copy(statement) as copy:
            copy.set_types([pipeline._copy_type(c.type) for c in entity.columns])
            for row in rows:
                copy.write_row([row[name] for name in names])
        return time.perf_counter() - started


def copy_upsert(url: str, entity: Entity, rows: list[dict[str, Any]]) -> float:
    """Seconds for a bare COPY into a temporary table, then ``INSERT … ON CONFLICT`` into an
    empty keyed table: what the issue measured as the room left above raw COPY."""
    names = [c.name for c in entity.columns]
    values = [n for n in names if n not in entity.key] or names
    ident = sql.Identifier
    with psycopg.connect(url, autocommit=True) as conn:
        table = _fresh_table(conn, "bench_upsert", entity)
        columns = sql.SQL(", ").join(
            sql.SQL("{} {}").format(ident(c.name), sql.SQL(SQL_TYPES[c.type]))
            for c in entity.columns
        )
        key = sql.SQL(", ").join(map(ident, entity.key))
        conn.execute(sql.SQL("create table {} ({}, primary key ({}))").format(table, columns, key))
        started = time.perf_counter()
        with conn.transaction():
            conn.execute(
                sql.SQL("create temporary table incoming ({}) on commit drop").format(columns)
            )
            statement = sql.SQL("copy incoming ({}) from stdin").format(
                sql.SQL(", ").join(map(ident, names))
            )
            with conn.cursor() as cur, cur.copy(statement) as copy:
                copy.set_types([pipeline._copy_type(c.type) for c in entity.columns])
                for row in rows:
                    copy.write_row([row[name] for name in names])
            conn.execute(
                sql.SQL(
                    "insert into {table} ({cols}) select distinct on ({key}) {cols} from incoming "
                    "order by {key} on conflict ({key}) do update set {updates}"
                ).format(
                    table=table,
                    cols=sql.SQL(", ").join(map(ident, names)),
                    key=key,
                    updates=sql.SQL(", ").join(
                        sql.SQL("{0} = excluded.{0}").format(ident(n)) for n in values
                    ),
                )
            )
        return time.perf_counter() - started


def decode_only(url: str, entity: Entity, load_id: str) -> float:
    """Seconds to read the batch's payloads and decode them into records, and nothing else."""
    with psycopg.connect(url) as conn:
        started = time.perf_counter()
        with conn.transaction():
            records = sum(len(chunk) for chunk in pipeline._payloads(conn, entity, load_id))
        elapsed = time.perf_counter() - started
    assert records, f"{entity.qualified_name}: load {load_id} has no records"
    return elapsed


def _array_literal(value: Any) -> Any:
    if not isinstance(value, list):
        return value
    items = ('"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"' for v in value)
    return "{" + ",".join(items) + "}"


def pandas_to_sql(url: str, entity: Entity, rows: list[dict[str, Any]]) -> float:
    """Seconds for ``DataFrame.to_sql`` with its defaults (the frame is built untimed).

    pandas makes a text column of a column of lists, so lists go as array literals.
    """
    import pandas as pd
    from sqlalchemy import create_engine

    names = [c.name for c in entity.columns]
    lists = [c.name for c in entity.columns if c.type == "text[]"]
    frame = pd.DataFrame.from_records(rows, columns=names)
    for name in lists:
        frame[name] = frame[name].map(_array_literal)
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            _fresh_table(conn, "bench_pandas", entity)
        started = time.perf_counter()
        frame.to_sql(entity.staging_table, engine, schema="bench_pandas")
        return time.perf_counter() - started
    finally:
        engine.dispose()


def dlt_merge(url: str, entity: Entity, rows: list[dict[str, Any]], work: Path) -> dict:
    """Seconds for dlt's extract, normalize and load of the rows, merged on the entity's key."""
    import dlt

    dataset = f"dlt_{entity.feed}_{entity.name}"  # a name dlt need not normalise
    pipe = dlt.pipeline(
        pipeline_name=f"bench_{entity.feed}_{entity.name}",
        pipelines_dir=str(work / "dlt"),
        destination=dlt.destinations.postgres(credentials=url),
        dataset_name=dataset,
    )
    with psycopg.connect(url, autocommit=True) as conn:
        for schema in (dataset, f"{dataset}_staging"):
            conn.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(schema)))
    resource = dlt.resource(
        rows,
        name=entity.name,
        table_name=entity.name,
        write_disposition="merge",
        primary_key=list(entity.key),
        max_table_nesting=0,  # lists stay in their row, as json, not child tables
    )
    steps = {}
    started = time.perf_counter()
    pipe.extract(resource)
    steps["extract_s"] = time.perf_counter() - started
    pipe.normalize()
    steps["normalize_s"] = time.perf_counter() - started - steps["extract_s"]
    info = pipe.load()
    steps["load_s"] = time.perf_counter() - started - steps["extract_s"] - steps["normalize_s"]
    info.raise_on_failed_jobs()
    steps["total_s"] = time.perf_counter() - started
    with psycopg.connect(url) as conn:
        loaded = conn.execute(
            sql.SQL("select count(*) from {}").format(sql.Identifier(dataset, entity.name))
        ).fetchone()[0]
    steps["rows_in_table"] = loaded
    return steps


# --- one entity, one feed, all feeds -----------------------------------------------------------


def _rate(rows: int, seconds: float) -> float:
    return round(rows / seconds) if seconds > 0 else 0.0


def measure_entity(
    entity: Entity,
    feed: FeedSettings,
    url: str,
    day: dt.date,
    work: Path,
    others: bool = True,
    client: Any = None,
) -> dict[str, Any]:
    client = client or client_for(feed, policy=RetryPolicy(backoff_base_s=0.05, backoff_max_s=0.5))
    started = time.perf_counter()
    load_id = pipeline.extract(entity, feed, url, day, day, "bench", client)
    extract_s = time.perf_counter() - started
    with Timings().watching() as timings:
        t0 = time.perf_counter()
        checked = pipeline.validate(entity, url, load_id, SECRET)
        t1 = time.perf_counter()
        published = pipeline.merge(entity, url, load_id)
        t2 = time.perf_counter()
    rows = timings.staged
    s = timings.seconds
    load_path_s = t2 - t0
    gx_s = s.get("gx_check_s", 0.0) + s.get("gx_finish_s", 0.0)
    out: dict[str, Any] = {
        "source_rows": checked.source_rows,
        "rows": len(rows),
        "quarantined_rows": checked.quarantined_rows,
        "duplicate_rows": checked.duplicate_rows,
        "inserted_rows": published.inserted_rows,
        "extract_s": round(extract_s, 3),
        "validate_s": round(t1 - t0, 3),
        "read_decode_s": round(s.get("read_decode_s", 0.0), 3),
        "parse_resolve_s": round(s.get("judge_s", 0.0) - s.get("gx_check_s", 0.0), 3),
        "gx_s": round(gx_s, 3),
        "stage_s": round(s.get("stage_s", 0.0), 3),
        "copy_staged_s": round(s.get("copy_staged_s", 0.0), 3),
        "merge_s": round(t2 - t1, 3),
        "load_path_s": round(load_path_s, 3),
        "load_path_rows_per_s": _rate(len(rows), load_path_s),
        "validation_share": round(gx_s / load_path_s, 3) if load_path_s else None,
    }
    if not others or not rows:
        return out
    copy_s = raw_copy(url, entity, rows)
    out["raw_copy_s"] = round(copy_s, 3)
    out["raw_copy_rows_per_s"] = _rate(len(rows), copy_s)
    upsert_s = copy_upsert(url, entity, rows)
    out["copy_upsert_s"] = round(upsert_s, 3)
    out["copy_upsert_rows_per_s"] = _rate(len(rows), upsert_s)
    out["copy_upsert_share_of_raw_copy"] = round(copy_s / upsert_s, 3)
    decode_s = decode_only(url, entity, load_id)
    out["decode_only_s"] = round(decode_s, 3)
    # The load path's ceiling if parsing, validating and resolving cost nothing: reading and
    # decoding the payloads, then COPY and upsert.
    out["ceiling_share_of_raw_copy"] = round(copy_s / (decode_s + upsert_s), 3)
    try:
        to_sql_s = pandas_to_sql(url, entity, rows)
        out["to_sql_s"] = round(to_sql_s, 3)
        out["to_sql_rows_per_s"] = _rate(len(rows), to_sql_s)
    except Exception as exc:  # a method that cannot load these rows is a finding, not a crash
        out["to_sql_error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
    try:
        steps = dlt_merge(url, entity, rows, work)
        out["dlt"] = {k: round(v, 3) for k, v in steps.items()}
        out["dlt_s"] = round(steps["total_s"], 3)
        out["dlt_rows_per_s"] = _rate(len(rows), steps["total_s"])
    except Exception as exc:
        out["dlt_error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
    out["load_path_share_of_raw_copy"] = round(copy_s / load_path_s, 3)
    if "dlt_s" in out:
        out["load_path_times_dlt"] = round(out["dlt_s"] / load_path_s, 2)
    if "to_sql_s" in out:
        out["load_path_times_to_sql"] = round(out["to_sql_s"] / load_path_s, 2)
    return out


def measure(
    scale: float,
    feeds: list[str] | None = None,
    *,
    as_of: dt.date | None = None,
    http_health: bool = False,
    on_entity: Callable[[str, dict], None] | None = None,
) -> dict:
    """Figures per entity (``feed.entity``) of the load path and the other loaders, at ``scale``.

    Feeds the requested ones depend on (positions' divisions, the volunteers and activities
    the hours refer to) are loaded first and measured too. ``on_entity`` is called with each
    entity's figures as soon as they are known. The health feed's pages are landed
    without HTTP (see :class:`DirectHealthClient`) unless ``http_health``.
    """
    wanted = set(feeds or ORDER)
    unknown = wanted - set(ORDER)
    if unknown:
        raise ValueError(f"unknown feed(s) {sorted(unknown)}; choose from {ORDER}")
    as_of = as_of or dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()
    day = as_of - dt.timedelta(days=1)
    result: dict[str, Any] = {
        "scale": scale,
        "as_of": as_of.isoformat(),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "targets": TARGETS,
        "health_landing": "http" if http_health else "direct",
        "entities": {},
    }
    with tempfile.TemporaryDirectory(prefix="civicflow-load-path-") as tmp:
        work = Path(tmp)
        os.environ[validation.GX_DIR_ENV] = str(work / "gx")  # GX results: thrown away
        pg = LocalPostgres(work / "pg", port=free_port())  # durable, as deployed
        pg.start()
        try:
            url = pg.ensure_database("bench_load_path")
            with psycopg.connect(url) as conn:
                result["postgres"] = dict(
                    conn.execute(
                        "select name, current_setting(name) from pg_settings where name in "
                        "('server_version', 'fsync', 'synchronous_commit', 'shared_buffers', "
                        "'max_wal_size')"
                    ).fetchall()
                )
            # GX's context is made once a process (about 2 s): not any one batch's cost.
            started = time.perf_counter()
            validation._context(str(validation.gx_dir()))
            result["gx_context_init_s"] = round(time.perf_counter() - started, 3)
            # The volunteer platform's rate limit is for the client's backoff tests, not this.
            with RunningSimulator(port=0, scale=scale, as_of=as_of, rate_limit=100_000) as sim:
                for feed_name in ORDER:
                    needed = feed_name in wanted or feed_name == "positions"
                    if not needed:
                        continue
                    feed = feed_settings(feed_name, sim.url)
                    for entity in FEEDS[feed_name]:
                        client = None
                        if feed_name == "health" and not http_health:
                            client = DirectHealthClient(sim, feed)
                        figures = measure_entity(
                            entity, feed, url, day, work, feed_name in wanted, client
                        )
                        if feed_name not in wanted:
                            continue
                        result["entities"][entity.qualified_name] = figures
                        if on_entity:
                            on_entity(entity.qualified_name, figures)
        finally:
            pg.stop()
    return result


# --- report ------------------------------------------------------------------------------------


def table(result: dict) -> str:
    lines = [
        f"Load path at scale {result['scale']} (as of {result['as_of']}), PostgreSQL "
        f"{result.get('postgres', {}).get('server_version', '?')} "
        f"(fsync {result.get('postgres', {}).get('fsync', '?')}); rows/s of the staged rows.",
        "",
        "| entity | rows | load path s | read+decode s | parse+resolve s | GX s | stage s "
        "| merge s | load path rows/s | COPY rows/s | COPY+upsert rows/s | to_sql rows/s "
        "| dlt rows/s | path/COPY | (COPY+upsert)/COPY | ceiling/COPY | path/dlt | path/to_sql "
        "| GX share |",
        "|---" * 19 + "|",
    ]

    def cell(figures: dict, key: str, fmt: str = ",.0f") -> str:
        value = figures.get(key)
        return "–" if value is None else format(value, fmt)

    for name, f in result["entities"].items():
        lines.append(
            f"| {name} | {f['rows']:,} | {f['load_path_s']:.2f} | {f['read_decode_s']:.2f} "
            f"| {f['parse_resolve_s']:.2f} "
            f"| {f['gx_s']:.2f} | {f['stage_s']:.2f} | {f['merge_s']:.2f} "
            f"| {cell(f, 'load_path_rows_per_s')} | {cell(f, 'raw_copy_rows_per_s')} "
            f"| {cell(f, 'copy_upsert_rows_per_s')} "
            f"| {cell(f, 'to_sql_rows_per_s')} | {cell(f, 'dlt_rows_per_s')} "
            f"| {cell(f, 'load_path_share_of_raw_copy', '.1%')} "
            f"| {cell(f, 'copy_upsert_share_of_raw_copy', '.1%')} "
            f"| {cell(f, 'ceiling_share_of_raw_copy', '.1%')} "
            f"| {cell(f, 'load_path_times_dlt', '.2f')}× "
            f"| {cell(f, 'load_path_times_to_sql', '.2f')}× "
            f"| {cell(f, 'validation_share', '.0%')} |"
        )
    lines += [
        "",
        f"Targets: load path ≥ {TARGETS['share_of_raw_copy']:.0%} of COPY's rows/s, "
        f"≥ {TARGETS['times_dlt']:.0f}× dlt's; GX ≤ {TARGETS['validation_share']:.0%} "
        "of the load path.",
    ]
    return "\n".join(lines)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    return str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.1, help="1.0: a district-year")
    parser.add_argument("--feeds", nargs="*", choices=ORDER, help="default: every feed")
    parser.add_argument(
        "--http-health", action="store_true", help="land the health pages over HTTP (slow)"
    )
    parser.add_argument("--output", type=Path, help="default: bench/results/load-path-<date>.json")
    args = parser.parse_args(argv)

    def progress(name: str, figures: dict) -> None:
        print(f"{name}: {json.dumps(figures, default=_json_default)}", file=sys.stderr, flush=True)

    result = measure(args.scale, args.feeds, http_health=args.http_health, on_entity=progress)
    result["feeds"] = sorted(args.feeds or ORDER)
    today = dt.date.today().isoformat()
    path = args.output or RESULTS / f"load-path-{today}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    # A day's file keeps every run, one per scale and set of feeds; a rerun replaces its own.
    saved = json.loads(path.read_text()) if path.exists() else {"date": today, "runs": []}
    runs = [
        r for r in saved["runs"] if (r["scale"], r["feeds"]) != (result["scale"], result["feeds"])
    ]
    saved["runs"] = sorted([*runs, result], key=lambda r: (r["scale"], r["feeds"]))
    path.write_text(json.dumps(saved, indent=2, ensure_ascii=False, default=_json_default) + "\n")
    print(table(result))
    print(f"\nwritten to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""civicflow benchmarks: ``make bench`` writes bench/results/<date>.json and prints a table.

Measured in one run on one machine, with ratios against a baseline from the
same run (machines here are shared and noisy):

- parse: import time of each DAG file in a fresh interpreter, after airflow.sdk;
- positions load path: a year of daily tallies through extract, validate and
  merge, against a bare COPY of the same rows into an empty table;
- load_path: every feed entity's validate + merge against a bare COPY, pandas
  ``to_sql`` and dlt's merge of the same rows (bench/load_path.py, ``--load-scale``);
- register_days: the register's snapshots of three consecutive days, reusing the rows of
  unchanged records against judging every record (bench/register_days.py, ``--e2e-scale``);
- end_to_end: a backfill of every feed from the simulator through real Airflow
  (``dags test`` of every DAG, then the marts), peak RSS, then a day with about 0.3 %
  of the records changed (bench/end_to_end.py, ``--e2e-scale``);
- marts: a district-year (bench/district_year.py, ``--scale`` 1.0 is domain.md's
  volumes) written into core, then every mart refreshed twice as the marts DAG
  does (civicflow.marts.refresh), against one scan and aggregate of the two big
  facts. ``--compare-with-version 9`` first times the marts as migrations up to
  V0009 defined them, then migrates the same data to the newest and times again.

``--only`` runs one of them; a day's results file keeps the other sections.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import end_to_end  # bench/end_to_end.py, beside this script
import load_path  # bench/load_path.py, beside this script
import psycopg
import register_days  # bench/register_days.py, beside this script
from district_year import generate  # bench/district_year.py, beside this script
from psycopg import sql

from civicflow.config import FeedSettings
from civicflow.feeds.positions import ENTITIES, VISITS
from civicflow.localdb import LocalPostgres, free_port
from civicflow.marts import MARTS, refresh, refresh_all
from civicflow.pipeline import extract, merge, run_entity, validate
from civicflow.simulator.server import RunningSimulator
from civicflow.warehouse import migrate, migrations

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DAYS = 365


def parse_times(repeat: int = 3) -> dict[str, float]:
    probe = """
import importlib.util, sys, time
import airflow.sdk
start = time.perf_counter()
spec = importlib.util.spec_from_file_location("dag", sys.argv[1])
spec.loader.exec_module(importlib.util.module_from_spec(spec))
print(time.perf_counter() - start)
"""
    out = {}
    for dag_file in sorted((ROOT / "dags").glob("*.py")):
        runs = [
            float(
                subprocess.run(
                    [sys.executable, "-c", probe, str(dag_file)],
                    capture_output=True, text=True, check=True,
                    env={"PYTHONPATH": str(ROOT / "plugins"), "PATH": "/usr/bin:/bin"},
                ).stdout.split()[-1]
            )
            for _ in range(repeat)
        ]  # fmt: skip
        out[dag_file.stem] = statistics.median(runs)
    return out


def positions_load(pg: LocalPostgres) -> dict[str, float]:
    url = pg.ensure_database("bench")
    end = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=8)).date() - dt.timedelta(days=1)
    with RunningSimulator(port=0) as sim:
        feed = FeedSettings(
            "positions",
            f"{sim.url}/positions",
            options={"lookback_days": DAYS, "max_catchup_days": DAYS},
        )
        for entity in ENTITIES[:3]:
            run_entity(entity, feed, url, end, end, "bench")
        t0 = time.perf_counter()
        load_id = extract(VISITS, feed, url, end, end, "bench")
        t1 = time.perf_counter()
        validate(VISITS, url, load_id)
        t2 = time.perf_counter()
        summary = merge(VISITS, url, load_id)
        t3 = time.perf_counter()
    rows = summary.accepted_rows
    with psycopg.connect(url) as conn:
        data = conn.execute(
            "select position_code, visit_date, visitors, activities_held, participants "
            "from core.fact_position_day"
        ).fetchall()
        conn.execute(
            "create table copy_baseline (position_code text, visit_date date, visitors int, "
            "activities_held int, participants int)"
        )
        c0 = time.perf_counter()
        with conn.cursor() as cur, cur.copy("copy copy_baseline from stdin") as copy:
            for row in data:
                copy.write_row(row)
        conn.commit()
        c1 = time.perf_counter()
    load_path = (t2 - t1) + (t3 - t2)
    return {
        "rows": rows,
        "extract_s": t1 - t0,
        "validate_s": t2 - t1,
        "merge_s": t3 - t2,
        "load_path_rows_per_s": rows / load_path,
        "raw_copy_rows_per_s": len(data) / (c1 - c0),
        "load_path_share_of_raw_copy": (rows / load_path) / (len(data) / (c1 - c0)),
    }


def baseline_scan(conn: psycopg.Connection, repeat: int = 3) -> float:
    """Seconds for one scan and aggregate of the two big facts: what any mart costs at least."""
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        conn.execute(
            "select service_area, status, count(*), sum(quantity), min(service_date), "
            "max(service_date) from core.fact_service group by 1, 2"
        ).fetchall()
        conn.execute(
            "select status, count(*), sum(hours) from core.fact_volunteer_hours group by 1"
        ).fetchall()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def refresh_twice(conn: psycopg.Connection, baseline_s: float, url: str) -> dict:
    """Every mart refreshed one after the other twice (the first after the load, then again),
    then on two connections at once as warehouse_marts does (its total is the wall time)."""
    out = {}
    for run in ("first", "second", "two at a time"):
        started = time.perf_counter()
        seconds = refresh_all(url) if run == "two at a time" else refresh(conn)
        total = time.perf_counter() - started
        out[run] = {"marts_s": seconds, "total_s": round(total, 3),
                    "ratio_to_baseline": round(total / baseline_s, 2)}  # fmt: skip
    return out


def marts_refresh(
    pg: LocalPostgres, scale: float, seed: int, compare_with: int | None = None
) -> dict:
    url = pg.ensure_database("bench_marts")
    newest = max(m.version for m in migrations())
    with psycopg.connect(url, autocommit=True) as conn:
        if compare_with:
            older = [m for m in migrations() if m.version <= compare_with]
            # migrate() as it was before the newer migrations were written
            with mock.patch("civicflow.warehouse.migrations", return_value=older):
                migrate(conn)
        else:
            migrate(conn)
        started = time.perf_counter()
        rows = generate(conn, scale=scale, seed=seed)
        generate_s = time.perf_counter() - started
        for table in rows:  # as autovacuum leaves a warehouse between loads
            conn.execute(sql.SQL("vacuum analyze {}").format(sql.Identifier(*table.split("."))))
        vacuum_s = time.perf_counter() - started - generate_s
        settings = dict(
            conn.execute(
                "select name, current_setting(name) from pg_settings where name in ('work_mem', "
                "'server_version', 'shared_buffers', 'max_parallel_workers_per_gather')"
            ).fetchall()
        )
        baseline_s = baseline_scan(conn)
        result = {
            "scale": scale,
            "seed": seed,
            "postgres": settings,
            "rows": rows,
            "generate_s": round(generate_s, 1),
            "generate_rows_per_s": round(sum(rows.values()) / generate_s),
            "vacuum_analyze_s": round(vacuum_s, 1),
            "baseline_scan_s": round(baseline_s, 3),
        }
        if compare_with:
            result[f"marts_V{compare_with:04d}"] = refresh_twice(conn, baseline_s, url)
            started = time.perf_counter()
            migrate(conn)
            result[f"migrate_V{compare_with:04d}_to_V{newest:04d}_s"] = round(
                time.perf_counter() - started, 1
            )
        result[f"marts_V{newest:04d}"] = refresh_twice(conn, baseline_s, url)
    return result


def table(result: dict) -> str:
    text = _table(result)
    if result.get("load_path"):
        text += "\n\n" + load_path.table(result["load_path"])
    if result.get("register_days"):
        text += "\n\n" + register_days.table(result["register_days"])
    if result.get("end_to_end"):
        text += "\n\n" + end_to_end.table(result["end_to_end"])
    return text


def _table(result: dict) -> str:
    lines = ["| measure | value |", "|---|---|"]
    for dag, seconds in result.get("parse_s", {}).items():
        lines.append(f"| parse {dag} | {seconds:.3f} s |")
    for key, value in result.get("positions_visits_year", {}).items():
        lines.append(f"| visits, {DAYS} days: {key} | {value:,.3f} |")
    marts = result.get("marts_district_year")
    if not marts:
        return "\n".join(lines)
    at = f"district-year, scale {marts['scale']}"
    for name, count in marts["rows"].items():
        lines.append(f"| {at}: {name} rows | {count:,} |")
    lines += [
        f"| {at}: generated (COPY) in | {marts['generate_s']:.1f} s |",
        f"| {at}: generated rows per second | {marts['generate_rows_per_s']:,} |",
        f"| {at}: vacuum analyze | {marts['vacuum_analyze_s']:.1f} s |",
        f"| {at}: baseline, one scan and aggregate of the facts | "
        f"{marts['baseline_scan_s']:.3f} s |",
    ]
    lines += [f"| {at}: {k} | {v} s |" for k, v in marts.items() if k.startswith("migrate_")]
    runs = [(k[6:], run, v[run]) for k, v in marts.items() if k.startswith("marts_V") for run in v]
    lines += [
        "",
        f"Marts refresh on the {at} (PostgreSQL {marts['postgres']['server_version']}), "
        "seconds per mart, as migrations up to that version define them:",
        "",
        "| mart | " + " | ".join(f"{version}, {run}" for version, run, _ in runs) + " |",
        "|---" * (len(runs) + 1) + "|",
    ]
    for mart in MARTS:
        cells = " | ".join(f"{figures['marts_s'][mart]:.2f}" for _, _, figures in runs)
        lines.append(f"| {mart} | {cells} |")
    lines.append("| all | " + " | ".join(f"{f['total_s']:.2f}" for _, _, f in runs) + " |")
    lines.append(
        "| all / baseline | "
        + " | ".join(f"{f['ratio_to_baseline']:.1f}" for _, _, f in runs)
        + " |"
    )
    return "\n".join(lines)


MODES = ("parse", "positions", "marts", "load_path", "register_days", "end_to_end")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="civicflow benchmarks")
    parser.add_argument("--only", choices=MODES, help="one benchmark")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="marts: district-year size (1.0: domain.md)"
    )
    parser.add_argument("--seed", type=int, default=20261127, help="marts: generator seed")
    parser.add_argument(
        "--compare-with-version",
        type=int,
        metavar="N",
        help="marts: first time the marts as migrations up to N defined them, on the same data",
    )
    parser.add_argument(
        "--load-scale",
        type=float,
        default=1.0,
        help="load_path: feed volumes (1.0: a district-year; 0.3 took 13 minutes here)",
    )
    parser.add_argument(
        "--e2e-scale",
        type=float,
        default=1.0,
        help="end_to_end: feed volumes (1.0: a district-year, about 15 minutes here)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="every volume at 0.1 of a district-year (about 15 minutes in all): a trial run",
    )
    parser.add_argument(
        "--e2e-parallel",
        action="store_true",
        help="end_to_end: the ingest DAGs after positions at once, a process each",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.scale = args.load_scale = args.e2e_scale = 0.1
    modes = [args.only] if args.only else list(MODES)

    RESULTS.mkdir(parents=True, exist_ok=True)
    today = dt.date.today().isoformat()
    path = RESULTS / f"{today}.json"
    result = json.loads(path.read_text()) if path.exists() else {"date": today}
    result["machine"] = {"python": platform.python_version(), "platform": platform.platform(),
                         "cpus": os.cpu_count()}  # fmt: skip
    # The machine's load when each benchmark began and ended: others' work skews the seconds
    # (not the ratios, whose baselines ran in the same minutes).
    load = result.setdefault("load_average", {})

    def note_load(mode: str, when: str) -> None:
        load[f"{mode} {when}"] = [round(x, 2) for x in os.getloadavg()]

    if "parse" in modes:
        note_load("parse", "start")
        result["parse_s"] = parse_times()
    if "positions" in modes or "marts" in modes:
        with tempfile.TemporaryDirectory() as tmp:
            pg = LocalPostgres(Path(tmp), port=free_port())
            pg.start()
            try:
                if "positions" in modes:
                    note_load("positions", "start")
                    result["positions_visits_year"] = positions_load(pg)
                if "marts" in modes:
                    note_load("marts", "start")
                    result["marts_district_year"] = marts_refresh(
                        pg, args.scale, args.seed, args.compare_with_version
                    )
                    note_load("marts", "end")
            finally:
                pg.stop()
    if "load_path" in modes:
        note_load("load_path", "start")
        result["load_path"] = load_path.measure(args.load_scale)
        note_load("load_path", "end")
    if "register_days" in modes:
        note_load("register_days", "start")
        result["register_days"] = register_days.measure(args.e2e_scale)
    if "end_to_end" in modes:
        note_load("end_to_end", "start")
        result["end_to_end"] = end_to_end.measure(args.e2e_scale, parallel=args.e2e_parallel)
        note_load("end_to_end", "end")
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False, default=str) + "\n")
    text = table(result)
    path.with_suffix(".md").write_text(text + "\n")
    print(text)
    print(f"\nwritten to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

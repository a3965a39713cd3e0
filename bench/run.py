"""civicflow benchmarks: ``make bench`` writes bench/results/<date>.json and prints a table.

Measured in one run on one machine, with ratios against a baseline from the
same run (machines here are shared and noisy):

- parse: import time of each DAG file in a fresh interpreter, after airflow.sdk;
- positions load path: a year of daily tallies through extract, validate and
  merge, against a bare COPY of the same rows into an empty table.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from civicflow.config import FeedSettings
from civicflow.feeds.positions import ENTITIES, VISITS
from civicflow.localdb import LocalPostgres, free_port
from civicflow.pipeline import extract, merge, run_entity, validate
from civicflow.simulator.server import RunningSimulator

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


def main() -> int:
    RESULTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        pg = LocalPostgres(Path(tmp), port=free_port())
        pg.start()
        try:
            load = positions_load(pg)
        finally:
            pg.stop()
    result = {
        "date": dt.date.today().isoformat(),
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "cpus": __import__("os").cpu_count()},
        "parse_s": parse_times(),
        "positions_visits_year": load,
    }  # fmt: skip
    path = RESULTS / f"{result['date']}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    lines = ["| measure | value |", "|---|---|"]
    for dag, seconds in result["parse_s"].items():
        lines.append(f"| parse {dag} | {seconds:.3f} s |")
    for key, value in load.items():
        lines.append(f"| visits, {DAYS} days: {key} | {value:,.3f} |")
    table = "\n".join(lines)
    path.with_suffix(".md").write_text(table + "\n")
    print(table)
    print(f"\nwritten to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Register snapshots day after day: reusing unchanged records' rows against judging every record.

The simulator's register at ``--scale`` (1.0: domain.md's 300,000 rows) is loaded for
three consecutive days into two warehouses on one embedded PostgreSQL: one with the
register as it ships (``reuse_unchanged``), one with reuse turned off. Each day's
extract, validate and merge are timed; the first day has nothing to reuse. The two
warehouses must end with the same person history (checked here), so the ratio of the
validate times is what reuse saves.

``.venv/bin/python bench/register_days.py --scale 0.3`` prints a Markdown table and
writes ``bench/results/register-days-<date>.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from civicflow.config import DEMO_PERSON_KEY, FeedSettings
from civicflow.feeds.civil_affairs import REGISTER
from civicflow.feeds.positions import COMMUNITIES, STREETS
from civicflow.httpclient import client_for
from civicflow.localdb import LocalPostgres, free_port
from civicflow.pipeline import extract, merge, run_entity, validate
from civicflow.simulator.server import DEMO_REGISTER_LOGIN, RunningSimulator

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results"
DAYS = 3
VARIANTS = {"reuse": REGISTER, "judge_all": dataclasses.replace(REGISTER, reuse_unchanged=False)}


def _history(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "select person_key, community_code, categories, registry_status, valid_from, "
            "valid_to from core.dim_person order by 1, 5"
        ).fetchall()


def measure(scale: float) -> dict:
    as_of = dt.date.today()
    secret = DEMO_PERSON_KEY.encode()
    result: dict = {"scale": scale, "days": {}}
    from civicflow.validation import _context, gx_dir

    _context(str(gx_dir()))  # GX imported and its context made once, before any clock starts

    with tempfile.TemporaryDirectory(prefix="register-days-") as tmp:
        pg = LocalPostgres(Path(tmp), port=free_port(), durable=True)
        pg.start()
        try:
            with RunningSimulator(port=0, scale=scale, as_of=as_of) as sim:
                divisions = FeedSettings(feed="positions", base_url=f"{sim.url}/positions")
                feed = FeedSettings(
                    feed="civil_affairs",
                    base_url=f"{sim.url}/civil_affairs",
                    auth=DEMO_REGISTER_LOGIN,
                )
                started = time.perf_counter()
                client_for(feed).get_json("exports/index.json")  # the simulator builds its files
                result["simulator_build_s"] = round(time.perf_counter() - started, 1)
                urls = {}
                for name in VARIANTS:
                    urls[name] = pg.ensure_database(f"register_{name}")
                    for entity in (STREETS, COMMUNITIES):
                        run_entity(entity, divisions, urls[name], as_of, as_of, "bench",
                                   client_for(divisions))  # fmt: skip
                for back in range(DAYS, 0, -1):
                    day = as_of - dt.timedelta(days=back)
                    figures = result["days"][day.isoformat()] = {}
                    # the two variants alternate, so both see the same machine
                    for name, entity in VARIANTS.items():
                        t0 = time.perf_counter()
                        load_id = extract(entity, feed, urls[name], day, day, "bench",
                                          client_for(feed))  # fmt: skip
                        t1 = time.perf_counter()
                        validated = validate(entity, urls[name], load_id, secret)
                        t2 = time.perf_counter()
                        published = merge(entity, urls[name], load_id)
                        t3 = time.perf_counter()
                        with psycopg.connect(urls[name]) as conn:
                            reused = conn.execute(
                                "select reused_rows from meta.load_audit where load_id = %s",
                                (load_id,),
                            ).fetchone()[0]
                        figures[name] = {
                            "rows": validated.source_rows,
                            "reused_rows": reused,
                            "extract_s": round(t1 - t0, 2),
                            "validate_s": round(t2 - t1, 2),
                            "merge_s": round(t3 - t2, 2),
                            "versions_opened": published.inserted_rows,
                            "versions_closed": published.updated_rows,
                        }
                    figures["validate_ratio"] = round(
                        figures["reuse"]["validate_s"] / figures["judge_all"]["validate_s"], 3
                    )
                if _history(urls["reuse"]) != _history(urls["judge_all"]):
                    raise AssertionError("the two warehouses' person histories differ")
                result["same_history"] = True
        finally:
            pg.stop()
    return result


def table(result: dict) -> str:
    lines = [
        f"Register snapshots on consecutive days at scale {result['scale']}: validate seconds "
        "reusing unchanged records' rows, and judging every record (same run, same data).",
        "",
        "| snapshot | rows | reused | validate s, reusing | validate s, judging all | ratio "
        "| merge s, reusing | merge s, judging all |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for day, f in result["days"].items():
        r, j = f["reuse"], f["judge_all"]
        lines.append(
            f"| {day} | {r['rows']:,} | {r['reused_rows'] or 0:,} | {r['validate_s']:.2f} | "
            f"{j['validate_s']:.2f} | {f['validate_ratio']:.2f} | {r['merge_s']:.2f} | "
            f"{j['merge_s']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="1.0: domain.md's register")
    args = parser.parse_args(argv)
    result = measure(args.scale)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"register-days-{dt.date.today().isoformat()}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    print(f"\nwritten to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

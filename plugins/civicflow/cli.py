"""The ``civicflow`` command: the local warehouse, the demo, Airflow on embedded defaults.

``make demo``, ``make airflow`` and ``make warehouse-url`` call this. An
external PostgreSQL is chosen with ``CIVICFLOW_WAREHOUSE_URL`` (and
``CIVICFLOW_AIRFLOW_DB_URL`` for Airflow's metadata); otherwise an embedded
server keeps its data in ``.local/postgres``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from civicflow.config import DEMO_PERSON_KEY
from civicflow.simulator.server import (
    DEMO_API_KEY,
    DEMO_CLIENT,
    DEMO_LEDGER_TOKEN,
    DEMO_REGISTER_LOGIN,
)

ROOT = Path(__file__).resolve().parents[2]
LOCAL = Path(os.environ.get("CIVICFLOW_LOCAL_DIR", ROOT / ".local"))
DEMO_DAGS = (  # references first
    "positions_ingest",
    "civil_affairs_ingest",
    "health_ingest",
    "elderly_care_ingest",
    "volunteer_ingest",
    "warehouse_marts",  # refresh the marts and write the report, as the Asset events would
)
SIMULATOR_PORT = int(os.environ.get("CIVICFLOW_SIMULATOR_PORT", "8765"))


def _local_postgres():
    from civicflow.localdb import DEFAULT_PORT, LocalPostgres

    return LocalPostgres(LOCAL / "postgres", int(os.environ.get("CIVICFLOW_PG_PORT", DEFAULT_PORT)))


@contextmanager
def databases(stop_after: bool) -> Iterator[tuple[str, str]]:
    """The warehouse and Airflow metadata URLs: external when configured, else embedded."""
    external = os.environ.get("CIVICFLOW_WAREHOUSE_URL")
    if external:
        yield external, os.environ.get("CIVICFLOW_AIRFLOW_DB_URL", "")
        return
    pg = _local_postgres()
    started = pg.start()
    try:
        yield pg.ensure_database("civicflow"), pg.ensure_database("airflow")
    finally:
        if started and stop_after:
            pg.stop()


def simulator_connections(simulator_url: str) -> dict[str, str]:
    """``AIRFLOW_CONN_*`` variables pointing the feed connections at the simulator.

    The credentials are the simulator's own, not anyone's secret.
    """
    feeds = {
        "positions_feed": {"host": f"{simulator_url}/positions"},
        "health_feed": {
            "host": f"{simulator_url}/health",
            "login": DEMO_CLIENT[0],
            "password": DEMO_CLIENT[1],
        },
        "volunteer_feed": {"host": f"{simulator_url}/volunteer", "password": DEMO_API_KEY},
        "civil_affairs_feed": {
            "host": f"{simulator_url}/civil_affairs",
            "login": DEMO_REGISTER_LOGIN[0],
            "password": DEMO_REGISTER_LOGIN[1],
        },
        "elderly_care_feed": {
            "host": f"{simulator_url}/elderly_care",
            "password": DEMO_LEDGER_TOKEN,
        },
    }
    return {
        f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps({"conn_type": "http", **conn})
        for conn_id, conn in feeds.items()
    }


def airflow_environment(warehouse: str, metadata: str, simulator_url: str) -> dict[str, str]:
    """Environment for Airflow on this project with demo connections (no secrets of anyone's)."""
    env = dict(os.environ)
    home = LOCAL / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__DEFAULT_TIMEZONE": "Asia/Shanghai",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": env.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO"),
            "AIRFLOW_CONN_WAREHOUSE": warehouse,
            **simulator_connections(simulator_url),
            "CIVICFLOW_ENV": env.get("CIVICFLOW_ENV", "demo"),
            "CIVICFLOW_REPORT_DIR": env.get("CIVICFLOW_REPORT_DIR", str(LOCAL / "reports")),
            # GX validation results (kept by every validate task) and the Data Docs the UI's
            # Data quality page builds from them: one folder for the tasks and the api-server.
            "CIVICFLOW_GX_DIR": env.get("CIVICFLOW_GX_DIR", str(LOCAL / "gx")),
            # airflow standalone starts its components as `airflow ...` from the PATH.
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(ROOT / "plugins"), env.get("PYTHONPATH")])
            ),
        }
    )
    if metadata:
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = metadata
    if env["CIVICFLOW_ENV"] == "demo" and not env.get("CIVICFLOW_PERSON_KEY"):
        env["CIVICFLOW_PERSON_KEY"] = DEMO_PERSON_KEY  # explicit, and refused outside the demo
    return env


def _airflow(env: dict[str, str], *args: str) -> None:
    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow), *args], env=env, check=True)


def _report(warehouse: str) -> None:
    import psycopg

    from civicflow.warehouse import table_counts

    with psycopg.connect(warehouse) as conn:
        print("\nRows per core table:")
        for table, count in table_counts(conn, "core").items():
            print(f"  {table:<28} {count:>8}")
        print("\nRows per mart:")
        for table, count in table_counts(conn, "marts").items():
            print(f"  {table:<28} {count:>8}")
        print("\nLoad audit (newest first):")
        rows = conn.execute(
            "select feed, entity, status, source_rows, accepted_rows, quarantined_rows, "
            "duplicate_rows, inserted_rows, updated_rows, "
            "source_rows = accepted_rows + quarantined_rows + duplicate_rows "
            "from meta.load_audit order by started_at desc limit 12"
        ).fetchall()
        header = (
            "feed",
            "entity",
            "status",
            "source",
            "accepted",
            "quarant.",
            "dupl.",
            "inserted",
            "updated",
            "adds up",
        )
        print("  " + " ".join(f"{h:>10}" for h in header))
        for row in rows:
            print("  " + " ".join(f"{'-' if v is None else str(v):>10}" for v in row))
        reasons = conn.execute(
            "select feed, entity, regexp_replace(reasons[1], ' ''.*$', ''), count(*) "
            "from quarantine.rejected_row group by 1, 2, 3 order by 1, 2, 4 desc"
        ).fetchall()
        if reasons:
            print("\nQuarantined rows by first reason:")
            for feed, entity, reason, count in reasons:
                print(f"  {feed}.{entity:<20} {count:>7}  {reason}")
        bad = conn.execute(
            "select count(*) from meta.load_audit "
            "where source_rows <> accepted_rows + quarantined_rows + duplicate_rows"
        ).fetchone()[0]
        print(f"\nBatches where the audit invariant fails: {bad}")


def cmd_demo(args: argparse.Namespace) -> int:
    from civicflow.simulator.server import RunningSimulator

    day = args.date or (dt.datetime.now(dt.UTC) + dt.timedelta(hours=8)).date() - dt.timedelta(1)
    with (
        databases(stop_after=True) as (warehouse, metadata),
        RunningSimulator(port=0, scale=args.scale) as sim,
    ):
        env = airflow_environment(warehouse, metadata, sim.url)
        print(f"warehouse: {warehouse.split('@')[-1]}  feed simulator: {sim.url}", flush=True)
        _airflow(env, "db", "migrate")
        # `airflow dags test` of each DAG, in one interpreter (Airflow imports once).
        subprocess.run(
            [sys.executable, "-m", "civicflow.airflow.dagtest", day.isoformat(), *DEMO_DAGS],
            env=env,
            check=True,
        )
        _report(warehouse)
        report = Path(env["CIVICFLOW_REPORT_DIR"], "warehouse-report.html")
        print(f"\nReport for analysts (written by warehouse_marts): {report}")
    return 0


def _write_report(warehouse: str, directory: Path | None = None) -> Path:
    from civicflow.pipeline import open_warehouse
    from civicflow.report import report_dir, write

    with open_warehouse(warehouse) as conn:
        return write(conn, directory or report_dir())


def _simulator_running(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def cmd_airflow(args: argparse.Namespace) -> int:
    """Airflow on the local set-up; a second command beside a running one shares its simulator."""
    from civicflow.simulator.server import RunningSimulator

    shared = _simulator_running(SIMULATOR_PORT)
    with (
        databases(stop_after=False) as (warehouse, metadata),
        contextlib.nullcontext() if shared else RunningSimulator(port=SIMULATOR_PORT),
    ):
        sim_url = f"http://127.0.0.1:{SIMULATOR_PORT}"
        env = airflow_environment(warehouse, metadata, sim_url)
        print(f"Airflow home {env['AIRFLOW_HOME']}; feed simulator on {sim_url}", flush=True)
        _airflow(env, "db", "migrate")
        with contextlib.suppress(KeyboardInterrupt):
            _airflow(env, *(args.airflow_args or ["standalone"]))
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    if args.action == "url":
        with databases(stop_after=False) as (warehouse, _):
            print(warehouse)
    elif args.action == "start":
        with databases(stop_after=False) as (warehouse, _):
            print(f"running: {warehouse.split('@')[-1]}", file=sys.stderr)
    elif args.action == "stop":
        _local_postgres().stop()
    elif args.action == "migrate":
        from civicflow.warehouse import connect, migrate

        with databases(stop_after=False) as (warehouse, _), connect(warehouse) as conn:
            applied = migrate(conn)
            print("applied: " + (", ".join(applied) if applied else "nothing, up to date"))
    return 0


def cmd_expectations(args: argparse.Namespace) -> int:
    from civicflow.feeds import all_entities
    from civicflow.spec import suite, suite_path

    stale = []
    for entity in all_entities():
        path = suite_path(entity, ROOT)
        text = json.dumps(suite(entity), ensure_ascii=False, indent=2) + "\n"
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(path.relative_to(ROOT))
            if not args.check:
                path.write_text(text, encoding="utf-8")
    if args.check and stale:
        print("expectation suites out of date: " + ", ".join(map(str, stale)), file=sys.stderr)
        return 1
    print(f"{len(stale)} suite(s) {'would be ' if args.check else ''}rewritten")
    return 0


def cmd_dictionary(args: argparse.Namespace) -> int:
    from civicflow.dictionary import missing_comments, render
    from civicflow.pipeline import open_warehouse

    with databases(stop_after=False) as (warehouse, _), open_warehouse(warehouse) as conn:
        missing = missing_comments(conn)
        text = render(conn)
    if missing:
        print("objects without a comment: " + ", ".join(missing), file=sys.stderr)
        return 1
    path = ROOT / "docs" / "data-dictionary.md"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path.relative_to(ROOT)}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    with databases(stop_after=False) as (warehouse, _):
        print(_write_report(warehouse, args.out))
    return 0


def cmd_simulator(args: argparse.Namespace) -> int:
    from civicflow.simulator.__main__ import main

    return main(["--port", str(args.port)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="civicflow", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the ingest DAGs once on embedded defaults")
    demo.add_argument("--date", type=dt.date.fromisoformat, help="logical date (default yesterday)")
    demo.add_argument(
        "--scale",
        type=float,
        default=0.002,
        help="share of a district-year the simulator serves (default 0.002)",
    )
    demo.set_defaults(func=cmd_demo)
    airflow = sub.add_parser("airflow", help="run an airflow command on the local set-up")
    airflow.add_argument("airflow_args", nargs=argparse.REMAINDER)
    airflow.set_defaults(func=cmd_airflow)
    db = sub.add_parser("db", help="the embedded warehouse server")
    db.add_argument("action", choices=["url", "start", "stop", "migrate"])
    db.set_defaults(func=cmd_db)
    exp = sub.add_parser("expectations", help="write expectations/ from the feed descriptions")
    exp.add_argument("--check", action="store_true", help="only report suites out of date")
    exp.set_defaults(func=cmd_expectations)
    dictionary = sub.add_parser(
        "dictionary", help="write docs/data-dictionary.md from the warehouse's comments"
    )
    dictionary.set_defaults(func=cmd_dictionary)
    rep = sub.add_parser(
        "report", help="write the analysts' HTML report of the marts (warehouse-report.html)"
    )
    rep.add_argument(
        "--out",
        type=Path,
        help="directory (default $CIVICFLOW_REPORT_DIR, else .local/reports)",
    )
    rep.set_defaults(func=cmd_report)
    sim = sub.add_parser("simulator", help="serve the feed simulator")
    sim.add_argument("--port", type=int, default=SIMULATOR_PORT)
    sim.set_defaults(func=cmd_simulator)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
